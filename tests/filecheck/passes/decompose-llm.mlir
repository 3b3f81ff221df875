// RUN: hetc opt %s -p decompose-llm | filecheck %s
// decompose-llm splits an agent.llm into prefill -> kv_transfer -> decode, linked by SSA through the KV
// cache (!agent.kv); the phases keep the model and the token counts and name the node they came from.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %a = agent.llm @answer(%q) {model = @chat, input_tokens = 512 : i64, output_tokens = 128 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%a) : !agent.text
}

// CHECK:      agent.graph @g {
// CHECK-NEXT:   [[Q:%.*]] = agent.input @q()
// CHECK-NEXT:   [[P:%.*]] = task.prefill @answer.prefill([[Q]]) {node = "answer", model = @chat, input_tokens = 512 : i64} : (!agent.text) -> !agent.kv
// CHECK-NEXT:   [[KV:%.*]] = task.kv_transfer @answer.kv([[P]]) {node = "answer", model = @chat, tokens = 512 : i64} : (!agent.kv) -> !agent.kv
// CHECK-NEXT:   [[D:%.*]] = task.decode @answer.decode([[KV]]) {node = "answer", model = @chat, input_tokens = 512 : i64, output_tokens = 128 : i64} : (!agent.kv) -> !agent.text
// CHECK-NEXT:   agent.output @o([[D]]) : !agent.text
// CHECK-NEXT: }
// CHECK-NOT:  agent.llm
