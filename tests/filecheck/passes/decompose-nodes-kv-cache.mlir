// RUN: hetc opt %s -p decompose-nodes | filecheck %s
// A kv_cache node becomes the task.kv_transfer that moves a conversation's cache, keeping where it is
// stored; the agent.llm reading the cache is left for decompose-llm.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %kv = agent.kv_cache @history(%q) {model = @chat, tokens = 4096 : i64, store = "remote"} : (!agent.text) -> !agent.kv
  %a = agent.llm @answer(%q, %kv) {model = @chat, input_tokens = 512 : i64, output_tokens = 64 : i64} : (!agent.text, !agent.kv) -> !agent.text
  agent.output @o(%a) : !agent.text
}

// CHECK:      [[Q:%.*]] = agent.input @q()
// CHECK-NEXT: [[KV:%.*]] = task.kv_transfer @history([[Q]]) {node = "history", model = @chat, tokens = 4096 : i64, store = "remote"} : (!agent.text) -> !agent.kv
// CHECK-NEXT: agent.llm @answer([[Q]], [[KV]])
// CHECK-NOT:  agent.kv_cache
