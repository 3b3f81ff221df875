// RUN: not hetc opt %s 2>&1 | filecheck %s
// An architecture's head count is > 0: the attention cost divides by it.

agent.model @chat {arch = {kind = "decoder", n_layers = 32 : i64, d_model = 4096 : i64, n_heads = 0 : i64, n_kv_heads = 8 : i64, d_ff = 14336 : i64, vocab_size = 128256 : i64}, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}n-heads-zero.mlir:4:1: error: invalid IR after input: agent.model @chat: n_heads must be > 0, got 0
// CHECK-NOT: internal error
