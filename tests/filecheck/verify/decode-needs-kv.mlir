// RUN: not hetc opt %s 2>&1 | filecheck %s
// A decode reads the KV cache of its prefill first: its first operand is an !agent.kv.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %d = task.decode @answer.decode(%q) {node = "answer", model = @chat, input_tokens = 64 : i64, output_tokens = 8 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%d) : !agent.text
}

// CHECK: {{.*}}decode-needs-kv.mlir:7:3: error: invalid IR after input: task.decode @answer.decode: first input must be the !agent.kv of its prefill
// CHECK-NOT: internal error
