// RUN: not hetc opt %s -p 'place{hwdb=cloud-2025}' 2>&1 | filecheck %s
// One compile prices with one database, the one the module records (hetc.target): no pass option names one.

builtin.module attributes {hetc.target = #task.target<"default", sha256 = "0000000000000000000000000000000000000000000000000000000000000000">} {
  agent.graph @g attributes {hetc.traffic = {requests_per_s = 1.000000e+00 : f64}} {
    %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
    %c = task.compute @format(%q) {node = "format", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.output @o(%c) : !agent.text
  }
}

// CHECK: --passes: error: bad pass pipeline 'place{hwdb=cloud-2025}': Provided arguments ["hwdb"] not found in expected arguments {{.*}} (no pass option names a hardware database: the compile records it on the module as hetc.target; choose it with --hwdb and --hwdb-extra)
