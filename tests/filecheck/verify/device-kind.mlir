// RUN: not hetc opt %s 2>&1 | filecheck %s
// A placement's device kind is one the hardware database knows (gpu, accelerator, cpu): partition chooses a
// transport by it.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @parse(%q) {placement = #task.device<"intel-xeon-8480", kind = "quantum", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "parse", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%c) : !agent.text
}

// CHECK: {{.*}}device-kind.mlir:7:3: error: cannot parse the IR: task.compute @parse: task.device: kind must be one of gpu|accelerator|cpu, got 'quantum'
// CHECK-NOT: internal error
