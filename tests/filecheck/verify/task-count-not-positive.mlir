// RUN: not hetc opt %s 2>&1 | filecheck %s
// Task ops check their numbers too: a prefill of zero tokens is not a prefill.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %p = task.prefill @answer.prefill(%q) {node = "answer", model = @chat, input_tokens = 0 : i64} : (!agent.text) -> !agent.kv
  agent.output @o(%p) : !agent.kv
}

// CHECK: {{.*}}task-count-not-positive.mlir:7:3: error: invalid IR after input: task.prefill @answer.prefill: input_tokens must be > 0, got 0
// CHECK-NOT: internal error
