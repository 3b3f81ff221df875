// RUN: not hetc opt %s 2>&1 | filecheck %s
// `hetc.target` on the module is the typed #task.target<...> every stage reads the hardware database from.

builtin.module attributes {hetc.target = "default"} {
  agent.graph @g {
    %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
    agent.output @o(%q) : !agent.text
  }
}

// CHECK: error: invalid IR after input: hetc.target must be a #task.target<...> (the hardware database), got "default"
// CHECK-NOT: internal error
