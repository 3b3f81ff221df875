// RUN: hetc opt %s -p place | filecheck %s
// A mixture-of-experts phase's gate and merge run with the phase they serve. place finds that phase by the SSA
// links decompose-llm makes (the gate's routing feeds the phase op, the merge reads its result) and the KV
// transfer's by the op reading the cache, not by names: here no op is named `<node>.<phase>` (place once
// matched f"{node}.{phase}" and left these ops unplaced).

builtin.module attributes {hetc.main = @g} {
  agent.model @moe {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 32000, n_experts = 8, experts_per_token = 2>, precision = "bf16", kv_precision = "bf16"}
  agent.graph @g attributes {hetc.traffic = {requests_per_s = 2.000000e+00 : f64}, hetc.slo = {latency_ms = 2.000000e+04 : f64}} {
    %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
    %g1 = task.gate @route_in(%q) {node = "answer", model = @moe, phase = "prefill", n_experts = 8 : i64, experts_per_token = 2 : i64} : (!agent.text) -> !agent.tokens
    %p = task.prefill @read(%q, %g1) {node = "answer", model = @moe, input_tokens = 256 : i64} : (!agent.text, !agent.tokens) -> !agent.kv
    %m1 = task.merge @combine_in(%p) {node = "answer", model = @moe, phase = "prefill"} : (!agent.kv) -> !agent.kv
    %kv = task.kv_transfer @move(%m1) {node = "answer", model = @moe, tokens = 256 : i64} : (!agent.kv) -> !agent.kv
    %g2 = task.gate @route_out(%kv) {node = "answer", model = @moe, phase = "decode", n_experts = 8 : i64, experts_per_token = 2 : i64} : (!agent.kv) -> !agent.tokens
    %d = task.decode @write(%kv, %g2) {node = "answer", model = @moe, input_tokens = 256 : i64, output_tokens = 32 : i64} : (!agent.kv, !agent.tokens) -> !agent.text
    %m2 = task.merge @combine_out(%d) {node = "answer", model = @moe, phase = "decode"} : (!agent.text) -> !agent.text
    agent.output @o(%m2) : !agent.text
  }
}

// CHECK-NOT:  hetc.placement
// CHECK:      task.gate @route_in({{.*}}) {placement = [[PREFILL:#task.device<[^>]*>]],
// CHECK-NEXT: task.prefill @read({{.*}}) {placement = [[PREFILL]],
// CHECK-NEXT: task.merge @combine_in({{.*}}) {placement = [[PREFILL]],
// CHECK-NEXT: task.kv_transfer @move({{.*}}) {placement = [[DECODE:#task.device<[^>]*>]],
// CHECK-NEXT: task.gate @route_out({{.*}}) {placement = [[DECODE]],
// CHECK-NEXT: task.decode @write({{.*}}) {placement = [[DECODE]],
// CHECK-NEXT: task.merge @combine_out({{.*}}) {placement = [[DECODE]],
