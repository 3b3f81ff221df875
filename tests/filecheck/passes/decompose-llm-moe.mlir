// RUN: hetc opt %s -p decompose-llm | filecheck %s
// A mixture-of-experts model gets gate -> experts (the phase op) -> merge in each phase: the gate routes
// the phase's first input, the phase op takes the gate's routing as an extra operand, merge follows it.

agent.model @moe {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 32000, n_experts = 8, experts_per_token = 2>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %a = agent.llm @answer(%q) {model = @moe, input_tokens = 256 : i64, output_tokens = 32 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%a) : !agent.text
}

// CHECK:      [[Q:%.*]] = agent.input @q()
// CHECK-NEXT: [[PG:%.*]] = task.gate @answer.prefill.gate([[Q]]) {node = "answer", model = @moe, phase = "prefill", n_experts = 8 : i64, experts_per_token = 2 : i64} : (!agent.text) -> !agent.tokens
// CHECK-NEXT: [[P:%.*]] = task.prefill @answer.prefill([[Q]], [[PG]]) {{.*}} : (!agent.text, !agent.tokens) -> !agent.kv
// CHECK-NEXT: [[PM:%.*]] = task.merge @answer.prefill.merge([[P]]) {{{.*}}phase = "prefill"} : (!agent.kv) -> !agent.kv
// CHECK-NEXT: [[KV:%.*]] = task.kv_transfer @answer.kv([[PM]])
// CHECK-NEXT: [[DG:%.*]] = task.gate @answer.decode.gate([[KV]]) {{{.*}}phase = "decode"{{.*}}} : (!agent.kv) -> !agent.tokens
// CHECK-NEXT: [[D:%.*]] = task.decode @answer.decode([[KV]], [[DG]])
// CHECK-NEXT: [[DM:%.*]] = task.merge @answer.decode.merge([[D]]) {{{.*}}phase = "decode"} : (!agent.text) -> !agent.text
// CHECK-NEXT: agent.output @o([[DM]]) : !agent.text
