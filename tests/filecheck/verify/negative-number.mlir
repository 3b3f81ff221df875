// RUN: not hetc opt %s 2>&1 | filecheck %s
// Numbers that may be zero are still never negative.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %w = agent.tool @web(%q) {tool = "search", latency_ms = 1.000000e+02 : f64, compute_ms = -1.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @o(%w) : !agent.documents
}

// CHECK: {{.*}}negative-number.mlir:6:3: error: invalid IR after input: agent.tool @web: compute_ms must be >= 0, got -1.0
// CHECK-NOT: internal error
