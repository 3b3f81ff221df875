// RUN: not hetc opt %s 2>&1 | filecheck %s
// The module's hardware target names its database's sha256 as 64 lower-case hex digits (or none, in
// hand-written IR: place fills it in).

builtin.module attributes {hetc.target = #task.target<"default", sha256 = "abc">} {
  agent.graph @g {
    %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
    agent.output @o(%q) : !agent.text
  }
}

// CHECK: {{.*}}target-sha256.mlir:5:{{[0-9]+}}: error: cannot parse the IR: task.target: sha256 must be 64 lowercase hex digits, got 'abc'
// CHECK-NOT: internal error
