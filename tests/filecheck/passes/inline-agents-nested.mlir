// RUN: hetc opt %s -p inline-agents | filecheck %s
// Nested sub-agents: @main calls @"main/outer" twice, and outer calls @"main/inner" as a plan_as_unit unit.
// Inlined names nest (<call>/<call>/<node>); a unit inside a callee that is no unit becomes one unit per copy
// (first/deep), and a unit inside a unit belongs to the outer one (second). The callee graphs come before
// @main here, so the call inside @"main/outer" is inlined there first; inline-agents-nested-main-first.mlir
// holds the same graphs with @main first and expects the same IR.

agent.graph @"main/inner" attributes {hetc.subagent} {
  %in = agent.input @q() : () -> !agent.text
  %w = agent.tool @web(%in) {tool = "search", latency_ms = 1.000000e+02 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @out(%w) : !agent.documents
}
agent.graph @"main/outer" attributes {hetc.subagent} {
  %in = agent.input @q() : () -> !agent.text
  %r = agent.call @deep(%in) {callee = @"main/inner", plan_as_unit = 1 : i64} : (!agent.text) -> !agent.documents
  %s = agent.compute @sum(%r) {cpu_ms = 1.000000e+00 : f64} : (!agent.documents) -> !agent.text
  agent.output @out(%s) : !agent.text
}
agent.graph @main {
  %q = agent.input @q() {tokens = 32 : i64} : () -> !agent.text
  %a = agent.call @first(%q) {callee = @"main/outer"} : (!agent.text) -> !agent.text
  %b = agent.call @second(%a) {callee = @"main/outer", plan_as_unit = 1 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%b) : !agent.text
}

// CHECK-NOT:  agent.graph @"main/
// CHECK:      agent.graph @main {
// CHECK-NEXT:   [[Q:%.*]] = agent.input @q() {tokens = 32 : i64}
// CHECK-NEXT:   [[W1:%.*]] = agent.tool @"first/deep/web"([[Q]]) {hetc.unit = "first/deep", tool = "search"
// CHECK-NEXT:   [[S1:%.*]] = agent.compute @"first/sum"([[W1]]) {cpu_ms
// CHECK-NEXT:   [[W2:%.*]] = agent.tool @"second/deep/web"([[S1]]) {hetc.unit = "second", tool = "search"
// CHECK-NEXT:   [[S2:%.*]] = agent.compute @"second/sum"([[W2]]) {hetc.unit = "second", cpu_ms
// CHECK-NEXT:   agent.output @o([[S2]]) : !agent.text
// CHECK-NEXT: }
// CHECK-NOT:  agent.call
