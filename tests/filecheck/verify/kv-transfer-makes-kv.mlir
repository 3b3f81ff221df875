// RUN: not hetc opt %s 2>&1 | filecheck %s
// A KV transfer moves a KV cache: task.kv_transfer declares its result type (!agent.kv).

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %p = task.prefill @answer.prefill(%q) {node = "answer", model = @chat, input_tokens = 64 : i64} : (!agent.text) -> !agent.kv
  %kv = task.kv_transfer @answer.kv(%p) {node = "answer", model = @chat, tokens = 64 : i64} : (!agent.kv) -> !agent.text
  agent.output @o(%kv) : !agent.text
}

// CHECK: {{.*}}kv-transfer-makes-kv.mlir:8:3: error: cannot parse the IR: task.kv_transfer @answer.kv: !agent.text should be of base attribute agent.kv
// CHECK-NOT: internal error
