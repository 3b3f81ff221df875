// RUN: hetc opt %s -p cse | filecheck %s
// Two nodes doing the same work are two symbols, each its own request for work: cse keeps both (their
// sym_name differs), and the output still reads each one.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %a = task.compute @first(%q) {node = "n", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  %b = task.compute @second(%q) {node = "n", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%a, %b) : !agent.text, !agent.text
}

// CHECK:      [[A:%.*]] = task.compute @first(
// CHECK-NEXT: [[B:%.*]] = task.compute @second(
// CHECK-NEXT: agent.output @o([[A]], [[B]]) : !agent.text, !agent.text
