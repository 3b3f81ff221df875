// RUN: not hetc opt %s 2>&1 | filecheck %s
// The call passes one value per agent.input of the callee, in order and of its type.

agent.graph @echo attributes {hetc.subagent} {
  %in = agent.input @q() : () -> !agent.text
  agent.output @out(%in) : !agent.text
}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.call @twice(%q, %q) {callee = @echo} : (!agent.text, !agent.text) -> !agent.text
  agent.output @o(%r) : !agent.text
}

// CHECK: {{.*}}call-arity.mlir:10:3: error: invalid IR after input: agent.call @twice: @echo takes (!agent.text) but the call passes (!agent.text, !agent.text)
// CHECK-NOT: internal error
