// RUN: not hetc opt %s 2>&1 | filecheck %s
// An architecture's head count is > 0: the attention cost divides by it. #agent.arch checks each field as it is
// read, against the spec loader's rule for it.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 0, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}n-heads-zero.mlir:5:1: error: cannot parse the IR: agent.model @chat: agent.arch: n_heads must be > 0, got 0
// CHECK-NOT: internal error
