// RUN: not hetc opt %s 2>&1 | filecheck %s
// #agent.arch fields are typed: a boolean field (gated_mlp, tied_embeddings) is true or false, not a number.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256, gated_mlp = 2>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}arch-field-type.mlir:4:1: error: cannot parse the IR: agent.model @chat: agent.arch: gated_mlp must be true or false, got 2
// CHECK-NOT: internal error
