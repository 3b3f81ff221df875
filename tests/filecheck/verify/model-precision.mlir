// RUN: not hetc opt %s 2>&1 | filecheck %s
// Precisions are the ones the cost model knows the bytes of.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "fp12", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}model-precision.mlir:4:1: error: invalid IR after input: agent.model @chat: precision must be one of {{.*}}, got 'fp12'
// CHECK-NOT: internal error
