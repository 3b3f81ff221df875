// RUN: not hetc opt %s 2>&1 | filecheck %s
// A NaN never reaches the cost model: every number in the IR is finite.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = agent.compute @parse(%q) {cpu_ms = 0x7FF8000000000000 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%c) : !agent.text
}

// CHECK: {{.*}}nan.mlir:6:3: error: invalid IR after input: agent.compute @parse: cpu_ms must be a finite number, got nan
// CHECK-NOT: internal error
