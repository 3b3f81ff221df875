// RUN: not hetc opt %s -p partition 2>&1 | filecheck %s
// Hand-written IR may place ops without the device kind that `place` writes into each placement
// (#task.device<"...", kind = "gpu", ...>); partition needs it to choose a transport and says so at the op
// (it once failed with a KeyError).

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @clean(%q) {placement = #task.device<"intel-xeon-8480", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "clean", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  %f = task.compute @format(%c) {placement = #task.device<"nvidia-l40s", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "format", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%f) : !agent.text
}

// CHECK: partition-no-device-kind.mlir:8:3: error: partition: task.compute @clean has a placement without the device kind (gpu, accelerator, cpu): run place first, or write kind = "..." after the device class
// CHECK-NOT: internal error
