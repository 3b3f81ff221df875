// RUN: not hetc opt %s 2>&1 | filecheck %s
// A #task.estimate holds place's six figures and the candidate metrics the plan reads, by name: a misspelt or
// unknown name is an error where it is read, not a figure the plan silently misses.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @parse(%q) {estimate = #task.estimate<latency_ms = 1.0, throughput_rps = 800.0, load = 1.0, worst = 1.0, usd_per_hour = 1.25, owned_devices = 0, tbt = 2.0>, node = "parse", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%c) : !agent.text
}

// CHECK: {{.*}}estimate-unknown-field.mlir:7:3: error: cannot parse the IR: task.compute @parse: task.estimate: unknown field(s) tbt; expected latency_ms, throughput_rps, load, worst, usd_per_hour, owned_devices, peak_throughput_rps, memory_gb, ttft_ms, tbt_ms
// CHECK-NOT: internal error
