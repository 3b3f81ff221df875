// RUN: hetc opt %s -p partition | filecheck %s
// IR dumped by an earlier hetc wrote the device kind as a `device_kind = "..."` attribute beside each placement;
// hetc opt reads it into the placement (`kind = ...` in #task.device), so partition runs on old dumps.

agent.model @chat {arch = {kind = "decoder", n_layers = 32 : i64, d_model = 4096 : i64, n_heads = 32 : i64, n_kv_heads = 8 : i64, d_ff = 14336 : i64, vocab_size = 128256 : i64}, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @clean(%q) {placement = #task.device<"intel-xeon-8480", replicas = 1, tp = 1, pp = 1, batch = 1>, device_kind = "cpu", node = "clean", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  %p = task.prefill @answer.prefill(%c) {placement = #task.device<"nvidia-h100-sxm", replicas = 1, tp = 2, pp = 1, batch = 4>, device_kind = "gpu", node = "answer", model = @chat, input_tokens = 512 : i64} : (!agent.text) -> !agent.kv
  %kv = task.kv_transfer @answer.kv(%p) {placement = #task.device<"nvidia-l40s", replicas = 1, tp = 1, pp = 1, batch = 16>, device_kind = "gpu", node = "answer", model = @chat, tokens = 512 : i64} : (!agent.kv) -> !agent.kv
  %d = task.decode @answer.decode(%kv) {placement = #task.device<"nvidia-l40s", replicas = 1, tp = 1, pp = 1, batch = 16>, device_kind = "gpu", node = "answer", model = @chat, input_tokens = 512 : i64, output_tokens = 64 : i64} : (!agent.kv) -> !agent.text
  %f = task.compute @format(%d) {placement = #task.device<"nvidia-l40s", replicas = 1, tp = 1, pp = 1, batch = 1>, device_kind = "gpu", node = "format", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%f) : !agent.text
}


// CHECK:      task.compute @clean({{.*}}) {placement = #task.device<"intel-xeon-8480", kind = "cpu", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "clean"
// CHECK-NEXT: task.transfer @answer.prefill.in0({{.*}}) {placement = #task.device<"nvidia-h100-sxm", kind = "gpu", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "answer", bytes = {{[0-9]+}} : i64, transport = "ethernet"}
// CHECK-NOT:  device_kind
