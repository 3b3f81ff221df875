// RUN: not hetc opt %s 2>&1 | filecheck %s
// Task ops keep their model symbol, checked as the node's was.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %e = task.embed @vec(%q) {node = "vec", model = @missing, tokens = 64 : i64} : (!agent.text) -> !agent.embedding
  agent.output @o(%e) : !agent.embedding
}

// CHECK: {{.*}}task-unknown-model.mlir:6:3: error: invalid IR after input: task.embed @vec: unknown model @missing
// CHECK-NOT: internal error
