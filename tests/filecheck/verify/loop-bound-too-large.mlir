// RUN: not hetc opt %s 2>&1 | filecheck %s
// max_iterations is bounded by the spec's limit: the planner and simulator unroll loops by it.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.loop @retry(%q) {max_iterations = 1000000000 : i64} : (!agent.text) -> !agent.text {
  ^bb0(%x: !agent.text, %again: !agent.text):
    %c = agent.compute @check(%x) {cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.loop_yield exits(%c : !agent.text) feedback(%c : !agent.text)
  }
  agent.output @o(%r) : !agent.text
}

// CHECK: {{.*}}loop-bound-too-large.mlir:6:3: error: invalid IR after input: agent.loop @retry: max_iterations = 1000000000 is above {{[0-9]+}}
// CHECK-NOT: internal error
