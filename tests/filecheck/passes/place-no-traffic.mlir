// RUN: not hetc opt %s -p place 2>&1 | filecheck %s
// place sizes the deployment for the graph's traffic (hetc.traffic, from the spec's `traffic:`); hand-written
// IR without it gets a located error naming what to add, not a guess.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @format(%q) {node = "format", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%c) : !agent.text
}

// CHECK: place-no-traffic.mlir:5:1: error: traffic: offline work needs its volume (tokens_per_day, or requests and deadline_h)
