// RUN: not hetc opt %s 2>&1 | filecheck %s
// A custom-form string whose hex-escaped bytes above 0x7F are not UTF-8 text (here Latin-1 for "café") reads
// back as bytes, which the op rejects: the error says so, at the op's line. (UTF-8 bytes read back as text:
// hex-escaped-utf8.mlir.)

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %t = agent.tool @web(%q) {tool = "caf\E9", latency_ms = 1.000000e+02 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @o(%t) : !agent.documents
}

// CHECK: {{.*}}hex-escaped-string.mlir:8:3: error: cannot parse the IR: {{.*}}. Write non-ASCII characters in strings as UTF-8, not as \XX escapes, or use the generic form
// CHECK-NOT: internal error
