// RUN: not hetc opt %s 2>&1 | filecheck %s
// agent.call names its callee by symbol, as func.call does: the graph must exist.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.call @helper(%q) {callee = @nowhere} : (!agent.text) -> !agent.text
  agent.output @o(%r) : !agent.text
}

// CHECK: {{.*}}call-unknown-callee.mlir:6:3: error: invalid IR after input: agent.call @helper: unknown callee @nowhere (no agent.graph of that name)
// CHECK-NOT: internal error
