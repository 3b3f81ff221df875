// RUN: not hetc opt %s 2>&1 | filecheck %s
// A tool's p99 latency is not below its typical latency.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %w = agent.tool @web(%q) {tool = "search", latency_ms = 1.000000e+02 : f64, latency_p99_ms = 5.000000e+01 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @o(%w) : !agent.documents
}

// CHECK: {{.*}}tool-p99.mlir:6:3: error: invalid IR after input: agent.tool @web: latency_p99_ms is below latency_ms
// CHECK-NOT: internal error
