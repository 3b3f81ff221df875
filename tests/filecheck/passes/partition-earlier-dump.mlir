// RUN: hetc opt %s -p partition | filecheck %s
// IR dumped by an earlier hetc: the device kind as a `device_kind = "..."` attribute beside each placement, the
// estimate as a dictionary, the hardware database as a `hetc.hwdb` dictionary and the plan-wide summary as
// `hetc.placement` on the module. hetc opt reads it as if written now (`kind = ...` in #task.device, a
// #task.estimate, the module's hetc.target; the summary, which belongs in plan.json, dropped).

builtin.module attributes {hetc.hwdb = {extra = [], name = "default", sha256 = "0000000000000000000000000000000000000000000000000000000000000000"}, hetc.placement = {critical_path = ["answer.prefill"], feasible = 1 : i64}} {
agent.model @chat {arch = {kind = "decoder", n_layers = 32 : i64, d_model = 4096 : i64, n_heads = 32 : i64, n_kv_heads = 8 : i64, d_ff = 14336 : i64, vocab_size = 128256 : i64}, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @clean(%q) {placement = #task.device<"intel-xeon-8480", replicas = 1, tp = 1, pp = 1, batch = 1>, estimate = {latency_ms = 1.000000e+00 : f64, load = 1.000000e+00 : f64, owned_devices = 0 : i64, peak_throughput_rps = 1.000000e+03 : f64, throughput_rps = 8.000000e+02 : f64, usd_per_hour = 1.250000e+00 : f64, worst = 1.000000e+00 : f64}, device_kind = "cpu", node = "clean", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  %p = task.prefill @answer.prefill(%c) {placement = #task.device<"nvidia-h100-sxm", replicas = 1, tp = 2, pp = 1, batch = 4>, device_kind = "gpu", node = "answer", model = @chat, input_tokens = 512 : i64} : (!agent.text) -> !agent.kv
  %kv = task.kv_transfer @answer.kv(%p) {placement = #task.device<"nvidia-l40s", replicas = 1, tp = 1, pp = 1, batch = 16>, device_kind = "gpu", node = "answer", model = @chat, tokens = 512 : i64} : (!agent.kv) -> !agent.kv
  %d = task.decode @answer.decode(%kv) {placement = #task.device<"nvidia-l40s", replicas = 1, tp = 1, pp = 1, batch = 16>, device_kind = "gpu", node = "answer", model = @chat, input_tokens = 512 : i64, output_tokens = 64 : i64} : (!agent.kv) -> !agent.text
  %f = task.compute @format(%d) {placement = #task.device<"nvidia-l40s", replicas = 1, tp = 1, pp = 1, batch = 1>, device_kind = "gpu", node = "format", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%f) : !agent.text
}
}


// CHECK:      builtin.module attributes {hetc.target = #task.target<"default", sha256 = "0000000000000000000000000000000000000000000000000000000000000000">} {
// CHECK:      task.compute @clean({{.*}}) {placement = #task.device<"intel-xeon-8480", kind = "cpu", replicas = 1, tp = 1, pp = 1, batch = 1>, estimate = #task.estimate<latency_ms = 1.0, throughput_rps = 800.0, load = 1.0, worst = 1.0, usd_per_hour = 1.25, owned_devices = 0, peak_throughput_rps = 1000.0>, node = "clean"
// CHECK-NEXT: task.transfer @answer.prefill.in0({{.*}}) {placement = #task.device<"nvidia-h100-sxm", kind = "gpu", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "answer", bytes = {{[0-9]+}} : i64, transport = "ethernet"}
// CHECK-NOT:  device_kind
