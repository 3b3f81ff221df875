// RUN: not hetc opt %s 2>&1 | filecheck %s
// A loop carries at least one value back to its next iteration: without one it is not a cycle.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.loop @retry(%q) {max_iterations = 2 : i64} : (!agent.text) -> !agent.text {
  ^bb0(%x: !agent.text):
    %c = agent.compute @check(%x) {cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.loop_yield exits(%c : !agent.text) feedback( : )
  }
  agent.output @o(%r) : !agent.text
}

// CHECK: {{.*}}loop-no-feedback.mlir:6:3: error: invalid IR after input: agent.loop @retry: a loop needs at least one feedback value
// CHECK-NOT: internal error
