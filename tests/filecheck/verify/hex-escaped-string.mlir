// RUN: not hetc opt %s 2>&1 | filecheck %s
// hetc prints non-ASCII characters in strings as UTF-8; a hand-written custom-form string with hex-escaped
// bytes above 0x7F reads back as bytes, which the op rejects: the error says so, at the op's line.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %t = agent.tool @web(%q) {tool = "caf\C3\A9", latency_ms = 1.000000e+02 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @o(%t) : !agent.documents
}

// CHECK: {{.*}}hex-escaped-string.mlir:7:3: error: cannot parse the IR: {{.*}}. Write non-ASCII characters in strings as UTF-8, not as \XX escapes, or use the generic form
// CHECK-NOT: internal error
