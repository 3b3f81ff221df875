// RUN: not hetc opt %s 2>&1 | filecheck %s
// A branch edge passes one value on, of the type it takes.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %b = agent.branch @"q->o"(%q) {probability = 5.000000e-01 : f64} : (!agent.text) -> !agent.json
  agent.output @o(%b) : !agent.json
}

// CHECK: {{.*}}branch-one-input.mlir:6:3: error: invalid IR after input: agent.branch @q->o: takes one input and returns its type
// CHECK-NOT: internal error
