// RUN: hetc opt %s -p decompose-nodes | filecheck %s
// decompose-nodes turns a guardrail (a safety classifier such as Llama Guard 3 1B) into one task.guardrail
// with its model, input and verdict tokens; the model reading its text gets the text the guardrail passed.

agent.model @guard {arch = {kind = "decoder", n_layers = 16 : i64, d_model = 2048 : i64, n_heads = 32 : i64, n_kv_heads = 8 : i64, d_ff = 8192 : i64, vocab_size = 128256 : i64}, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 128 : i64} : () -> !agent.text
  %s = agent.guardrail @screen(%q) {model = @guard, input_tokens = 512 : i64, output_tokens = 8 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%s) : !agent.text
}

// CHECK:      [[Q:%.*]] = agent.input @q()
// CHECK-NEXT: [[S:%.*]] = task.guardrail @screen([[Q]]) {node = "screen", model = @guard, input_tokens = 512 : i64, output_tokens = 8 : i64} : (!agent.text) -> !agent.text
// CHECK-NEXT: agent.output @o([[S]]) : !agent.text
