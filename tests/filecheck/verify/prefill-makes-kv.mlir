// RUN: not hetc opt %s 2>&1 | filecheck %s
// A prefill produces the KV cache its decode reads: task.prefill declares its result type (!agent.kv), which
// is checked as the op is read.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %p = task.prefill @answer.prefill(%q) {node = "answer", model = @chat, input_tokens = 64 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%p) : !agent.text
}

// CHECK: {{.*}}prefill-makes-kv.mlir:8:3: error: cannot parse the IR: task.prefill @answer.prefill: !agent.text should be of base attribute agent.kv
// CHECK-NOT: internal error
