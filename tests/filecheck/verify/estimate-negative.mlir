// RUN: not hetc opt %s 2>&1 | filecheck %s
// Every figure of a #task.estimate is a finite number >= 0 (a cost, a latency, a count of invocations).

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @parse(%q) {estimate = #task.estimate<latency_ms = 1.0, throughput_rps = 800.0, load = 1.0, worst = 1.0, usd_per_hour = -1.25, owned_devices = 0>, node = "parse", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%c) : !agent.text
}

// CHECK: {{.*}}estimate-negative.mlir:6:3: error: cannot parse the IR: task.compute @parse: task.estimate: usd_per_hour must be a finite number >= 0, got -1.25
// CHECK-NOT: internal error
