// RUN: not hetc opt %s 2>&1 | filecheck %s
// An agent.model holds every architecture number the cost model reads.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}arch-missing-field.mlir:4:1: error: invalid IR after input: agent.model @chat: arch lacks 'd_ff'
// CHECK-NOT: internal error
