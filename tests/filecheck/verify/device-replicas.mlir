// RUN: not hetc opt %s 2>&1 | filecheck %s
// A placement runs on at least one replica of its device class; the attribute is checked as it is read,
// and the error names the line of the op that holds it.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @parse(%q) {placement = #task.device<"intel-xeon-8480", kind = "cpu", replicas = 0, tp = 1, pp = 1, batch = 1>, node = "parse", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%c) : !agent.text
}

// CHECK: {{.*}}device-replicas.mlir:7:3: error: cannot parse the IR: task.compute @parse: task.device: replicas must be >= 1
// CHECK-NOT: internal error
