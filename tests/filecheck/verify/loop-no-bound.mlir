// RUN: not hetc opt %s 2>&1 | filecheck %s
// A loop needs a bound: max_iterations >= 1.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.loop @retry(%q) {max_iterations = 0 : i64} : (!agent.text) -> !agent.text {
  ^bb0(%x: !agent.text, %again: !agent.text):
    %c = agent.compute @check(%x) {cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.loop_yield exits(%c : !agent.text) feedback(%c : !agent.text)
  }
  agent.output @o(%r) : !agent.text
}

// CHECK: {{.*}}loop-no-bound.mlir:6:3: error: invalid IR after input: agent.loop @retry: max_iterations must be >= 1 (a loop needs a bound)
// CHECK-NOT: internal error
