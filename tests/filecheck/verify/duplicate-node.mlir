// RUN: not hetc opt %s 2>&1 | filecheck %s
// Node names are unique within a graph (they become task, service and file names).

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %a = agent.compute @step(%q) {cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  %b = agent.compute @step(%a) {cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%b) : !agent.text
}

// CHECK: {{.*}}duplicate-node.mlir:4:1: error: invalid IR after input: agent.graph @g: duplicate node @step
// CHECK-NOT: internal error
