// RUN: not hetc opt %s 2>&1 | filecheck %s
// A branch edge is taken with a probability in (0, 1].

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %b = agent.branch @"q->o"(%q) {probability = 1.500000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%b) : !agent.text
}

// CHECK: {{.*}}branch-probability.mlir:6:3: error: invalid IR after input: agent.branch @q->o: probability must be in (0, 1], got 1.5
// CHECK-NOT: internal error
