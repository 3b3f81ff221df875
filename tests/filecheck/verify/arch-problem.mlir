// RUN: not hetc opt %s 2>&1 | filecheck %s
// An agent.model's architecture holds together across fields (the spec loader's arch_problems): the query
// heads share key/value heads in whole groups.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 5, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}arch-problem.mlir:5:1: error: invalid IR after input: agent.model @chat: n_heads 32 is not divisible by n_kv_heads 5
// CHECK-NOT: internal error
