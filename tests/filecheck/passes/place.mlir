// RUN: hetc opt %s -p place | filecheck %s
// place chooses a device class, parallelism, batch and replicas for every task op and writes them back:
// `placement = #task.device<...>` (with the device kind) and `estimate = #task.estimate<...>` (latency, throughput, cost) on each
// op. The plan-wide summary (cost, paths, baselines) goes to plan.json, not into the IR. Hand-written IR records
// no hardware target, so place uses the default database and records it (`hetc.target` with its sha256) for the
// passes after it.
// Device names and cost figures come from the database and the cost model: they are matched loosely here.

builtin.module attributes {hetc.main = @g} {
  agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
  agent.graph @g attributes {hetc.traffic = {requests_per_s = 2.000000e+00 : f64}, hetc.slo = {latency_ms = 2.000000e+04 : f64}} {
    %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
    %p = task.prefill @answer.prefill(%q) {node = "answer", model = @chat, input_tokens = 512 : i64} : (!agent.text) -> !agent.kv
    %kv = task.kv_transfer @answer.kv(%p) {node = "answer", model = @chat, tokens = 512 : i64} : (!agent.kv) -> !agent.kv
    %d = task.decode @answer.decode(%kv) {node = "answer", model = @chat, input_tokens = 512 : i64, output_tokens = 128 : i64} : (!agent.kv) -> !agent.text
    %c = task.compute @format(%d) {node = "format", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
    agent.output @o(%c) : !agent.text
  }
}

// CHECK-NOT:  hetc.placement
// CHECK:      builtin.module attributes {hetc.main = @g, hetc.target = #task.target<"default", sha256 = "{{[0-9a-f]+}}">}
// CHECK:      agent.input @q() {tokens = 64 : i64}
// The KV transfer runs with the decode it feeds (same class, parallelism and batch); the CPU-only compute
// lands on a CPU class. Every task op gets a placement with at least one replica and its device kind.
// CHECK-NEXT: task.prefill @answer.prefill({{.*}}) {placement = #task.device<"{{[a-z0-9-]+}}", kind = "{{gpu|accelerator}}", replicas = {{[1-9][0-9]*}}, tp = {{[0-9]+}}, pp = {{[0-9]+}}, batch = {{[0-9]+}}>, estimate = #task.estimate<latency_ms = {{[0-9.e+-]+}}, throughput_rps = {{[0-9.e+-]+}}, load = 1.0, worst = 1.0, usd_per_hour = {{.*}}>, node = "answer"
// CHECK-NEXT: task.kv_transfer @answer.kv({{.*}}) {placement = [[DECODE:#task.device<[^>]*>]], node = "answer"
// CHECK-NEXT: task.decode @answer.decode({{.*}}) {placement = [[DECODE]], estimate = #task.estimate<{{.*}}>, node = "answer"
// CHECK-NEXT: task.compute @format({{.*}}) {placement = #task.device<"{{[a-z0-9-]+}}", kind = "cpu", replicas = {{[1-9][0-9]*}}, tp = 1, pp = 1, batch = {{[0-9]+}}>, estimate = #task.estimate<{{.*}}>, node = "format"
// CHECK-NEXT: agent.output @o
