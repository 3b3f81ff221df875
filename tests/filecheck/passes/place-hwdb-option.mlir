// RUN: not hetc opt %s -p 'place{hwdb=cloud-2025}' 2>&1 | filecheck %s
// One compile prices with one database: a pass option naming another than the one the IR records is an error.

builtin.module attributes {hetc.hwdb = {extra = [], name = "default", sha256 = "0000000000000000000000000000000000000000000000000000000000000000"}} {
  agent.graph @g attributes {hetc.traffic = {requests_per_s = 1.000000e+00 : f64}} {
    %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
    %c = task.compute @format(%q) {node = "format", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.output @o(%c) : !agent.text
  }
}

// CHECK: --passes: error: place{hwdb=...} names the hardware database 'cloud-2025' but this compile uses 'default'; one compile prices with one database
