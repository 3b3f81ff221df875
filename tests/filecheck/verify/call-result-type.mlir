// RUN: not hetc opt %s 2>&1 | filecheck %s
// The call's results are the callee's outputs, of their types.

agent.graph @echo attributes {hetc.subagent} {
  %in = agent.input @q() : () -> !agent.text
  agent.output @out(%in) : !agent.text
}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.call @c(%q) {callee = @echo} : (!agent.text) -> !agent.audio
  agent.output @o(%r) : !agent.audio
}

// CHECK: {{.*}}call-result-type.mlir:10:3: error: invalid IR after input: agent.call @c: @echo returns (!agent.text) but the call expects (!agent.audio)
// CHECK-NOT: internal error
