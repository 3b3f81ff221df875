// RUN: not hetc opt %s -p place 2>&1 | filecheck %s
// IR that records its hardware target (hetc.target, as `hetc compile` writes it) is priced with that one:
// when the database's sha256 no longer matches the record, place stops instead of pricing with another.

builtin.module attributes {hetc.target = #task.target<"default", sha256 = "0000000000000000000000000000000000000000000000000000000000000000">} {
  agent.graph @g attributes {hetc.traffic = {requests_per_s = 1.000000e+00 : f64}} {
    %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
    %c = task.compute @format(%q) {node = "format", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.output @o(%c) : !agent.text
  }
}

// CHECK: hetc.target: error: the hardware database 'default' changed since this IR was made (sha256 000000000000..., now {{[0-9a-f]+}}...); compile the spec again
