// RUN: not hetc opt %s 2>&1 | filecheck %s
// The graph's SLO and traffic numbers are checked like the nodes': an infinite latency target is no target.

agent.graph @g attributes {hetc.slo = {latency_ms = 0x7FF0000000000000 : f64}} {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  agent.output @o(%q) : !agent.text
}

// CHECK: {{.*}}inf-slo.mlir:4:1: error: invalid IR after input: agent.graph @g: hetc.slo: latency_ms must be a finite number, got inf
// CHECK-NOT: internal error
