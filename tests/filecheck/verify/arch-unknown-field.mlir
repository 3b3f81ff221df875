// RUN: not hetc opt %s 2>&1 | filecheck %s
// #agent.arch holds only the fields of a model architecture (hetc.models.ModelArch): a misspelt one is an
// error, not a number the cost model silently ignores.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256, n_expert = 8>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}arch-unknown-field.mlir:5:1: error: cannot parse the IR: agent.model @chat: agent.arch: unknown field 'n_expert'
// CHECK-NOT: internal error
