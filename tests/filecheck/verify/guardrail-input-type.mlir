// RUN: not hetc opt %s 2>&1 | filecheck %s
// A guardrail screens text: audio reaching it is a type error the verifier names.

agent.model @guard {arch = {kind = "decoder", n_layers = 16 : i64, d_model = 2048 : i64, n_heads = 32 : i64, n_kv_heads = 8 : i64, d_ff = 8192 : i64, vocab_size = 128256 : i64}, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %a = agent.input @mic() {audio_seconds = 5.000000e+00 : f64} : () -> !agent.audio
  %s = agent.guardrail @screen(%a) {model = @guard, input_tokens = 512 : i64, output_tokens = 8 : i64} : (!agent.audio) -> !agent.text
  agent.output @o(%s) : !agent.text
}

// CHECK: agent.guardrail @screen: input of type !agent.audio is not accepted; expected !agent.text, !agent.tokens, !agent.documents, !agent.json
