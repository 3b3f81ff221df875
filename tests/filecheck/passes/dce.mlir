// RUN: hetc opt %s -p dce | filecheck %s
// XFAIL: *
// What dce should do once the ops state their effects (issue 13, point 4: no op has effect traits yet, so
// xDSL's dce erases nothing): a task whose result nobody reads is dead work and goes; a store writes to its
// vector database, and the output leaves the graph, so both stay. When effect traits land this test passes
// unexpectedly, which lit reports as a failure: then delete the XFAIL line.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %used = task.compute @used(%q) {node = "used", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  %dead = task.compute @dead(%q) {node = "dead", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  %s = task.store @remember(%q) {node = "remember", latency_ms = 1.000000e+00 : f64, n_vectors = 100 : i64, dim = 8 : i64, precision = "fp16"} : (!agent.text) -> !agent.json
  agent.output @o(%used) : !agent.text
}

// CHECK:     task.compute @used
// CHECK-NOT: @dead
// CHECK:     task.store @remember
// CHECK:     agent.output @o
