// RUN: not hetc opt %s 2>&1 | filecheck %s
// The values a loop's body exits with are the loop's results, of their types.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.loop @retry(%q) {max_iterations = 2 : i64} : (!agent.text) -> !agent.json {
  ^bb0(%x: !agent.text, %again: !agent.text):
    %c = agent.compute @check(%x) {cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.loop_yield exits(%c : !agent.text) feedback(%c : !agent.text)
  }
  agent.output @o(%r) : !agent.json
}

// CHECK: {{.*}}loop-exit-types.mlir:6:3: error: invalid IR after input: agent.loop @retry: exit values must match the loop results
// CHECK-NOT: internal error
