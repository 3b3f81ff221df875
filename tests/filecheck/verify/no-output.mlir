// RUN: not hetc opt %s 2>&1 | filecheck %s
// A graph without agent.output computes nothing anyone reads.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = agent.compute @parse(%q) {cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
}

// CHECK: {{.*}}no-output.mlir:4:1: error: invalid IR after input: agent.graph @g has no agent.output: nothing leaves the graph
// CHECK-NOT: internal error
