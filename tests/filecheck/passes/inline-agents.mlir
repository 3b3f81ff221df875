// RUN: hetc opt %s -p inline-agents | filecheck %s
// inline-agents replaces each agent.call by the callee's body: the callee's inputs become the call's
// operands, its output's operand becomes the call's result, inlined nodes are renamed <call>/<node>, a
// plan_as_unit call marks them hetc.unit, and the sub-agent (hetc.subagent) is erased once inlined.

agent.graph @"main/research" attributes {hetc.subagent} {
  %in = agent.input @q() : () -> !agent.text
  %w = agent.tool @web(%in) {tool = "search", latency_ms = 1.000000e+02 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @out(%w) : !agent.documents
}
agent.graph @main {
  %q = agent.input @q() {tokens = 32 : i64} : () -> !agent.text
  %r = agent.call @research(%q) {callee = @"main/research", plan_as_unit = 1 : i64} : (!agent.text) -> !agent.documents
  %s = agent.compute @summarise(%r) {cpu_ms = 1.000000e+00 : f64} : (!agent.documents) -> !agent.text
  agent.output @o(%s) : !agent.text
}

// CHECK-NOT:  agent.graph @"main/research"
// CHECK:      agent.graph @main {
// CHECK-NEXT:   [[Q:%.*]] = agent.input @q() {tokens = 32 : i64}
// CHECK-NEXT:   [[W:%.*]] = agent.tool @"research/web"([[Q]]) {hetc.unit = "research", tool = "search"
// CHECK-NEXT:   [[S:%.*]] = agent.compute @summarise([[W]])
// CHECK-NEXT:   agent.output @o([[S]]) : !agent.text
// CHECK-NEXT: }
// CHECK-NOT:  agent.call
