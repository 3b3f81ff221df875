// RUN: hetc opt %s -p partition | filecheck %s
// partition makes the placement's communication explicit: a task.transfer on every data edge between ops
// on different device classes (placed on the consumer's class; `ethernet` when a CPU is involved, `roce`
// between accelerators), a transport on each task.kv_transfer, and a task.allreduce after a prefill or
// decode placed with tensor parallelism (tp > 1). Ops on one class talk in process: no transfer. The device
// class's kind (gpu, accelerator, cpu) is part of each placement, as place writes it.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %c = task.compute @clean(%q) {placement = #task.device<"intel-xeon-8480", kind = "cpu", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "clean", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  %p = task.prefill @answer.prefill(%c) {placement = #task.device<"nvidia-h100-sxm", kind = "gpu", replicas = 1, tp = 2, pp = 1, batch = 4>, node = "answer", model = @chat, input_tokens = 512 : i64} : (!agent.text) -> !agent.kv
  %kv = task.kv_transfer @answer.kv(%p) {placement = #task.device<"nvidia-l40s", kind = "gpu", replicas = 1, tp = 1, pp = 1, batch = 16>, node = "answer", model = @chat, tokens = 512 : i64} : (!agent.kv) -> !agent.kv
  %d = task.decode @answer.decode(%kv) {placement = #task.device<"nvidia-l40s", kind = "gpu", replicas = 1, tp = 1, pp = 1, batch = 16>, node = "answer", model = @chat, input_tokens = 512 : i64, output_tokens = 64 : i64} : (!agent.kv) -> !agent.text
  %f = task.compute @format(%d) {placement = #task.device<"nvidia-l40s", kind = "gpu", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "format", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%f) : !agent.text
}

// CHECK:      [[Q:%.*]] = agent.input @q()
// CHECK-NEXT: [[C:%.*]] = task.compute @clean([[Q]])
// The CPU's text crosses to the GPU prefill over ethernet:
// CHECK-NEXT: [[T:%.*]] = task.transfer @answer.prefill.in0([[C]]) {{{.*}}placement = #task.device<"nvidia-h100-sxm", kind = "gpu", replicas = 1, tp = 1, pp = 1, batch = 1>, node = "answer", bytes = {{[0-9]+}} : i64, transport = "ethernet"} : (!agent.text) -> !agent.text
// CHECK-NEXT: [[P:%.*]] = task.prefill @answer.prefill([[T]]) {placement = {{[^,]*}}, kind = "gpu", replicas = 1, tp = 2, pp = 1, batch = 4>, node = "answer"
// The tp = 2 prefill's all-reduce runs on its devices and stands between it and its users:
// CHECK-NEXT: [[AR:%.*]] = task.allreduce @answer.prefill.allreduce([[P]]) {placement = #task.device<"nvidia-h100-sxm", kind = "gpu", replicas = 1, tp = 2, pp = 1, batch = 4>, node = "answer", tp = 2 : i64, bytes = {{[0-9]+}} : i64} : (!agent.kv) -> !agent.kv
// The KV cache moves between two accelerator classes in its own kv_transfer: no task.transfer for it.
// CHECK-NEXT: [[KV:%.*]] = task.kv_transfer @answer.kv([[AR]]) {{{.*}}transport = "roce"
// CHECK-NEXT: [[D:%.*]] = task.decode @answer.decode([[KV]])
// Same class (nvidia-l40s) as the decode: in process, no transfer.
// CHECK-NEXT: [[F:%.*]] = task.compute @format([[D]])
// CHECK-NEXT: agent.output @o([[F]]) : !agent.text
