// RUN: hetc opt %s | filecheck %s
// hetc prints control and bidi characters as hex-escaped UTF-8 bytes for a terminal (hetc.errors.printable_ir),
// and a hand-written string may use them too: in the custom form they read back as the text they spell.

agent.graph @"g\E2\80\AE" {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %t = agent.tool @web(%q) {tool = "caf\C3\A9\1B", latency_ms = 1.000000e+02 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @o(%t) : !agent.documents
}

// CHECK: agent.graph @"g\E2\80\AE"
// CHECK: tool = "café\1B"
