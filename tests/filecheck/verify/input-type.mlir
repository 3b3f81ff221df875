// RUN: not hetc opt %s 2>&1 | filecheck %s
// Each node kind accepts the payloads it can read: speech-to-text reads audio. The op declares its operand
// types (agent.Payload of its ACCEPTED_INPUTS), checked as the op is read.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %t = agent.speech_to_text @stt(%q) {model = @chat, audio_seconds = 1.000000e+00 : f64, output_tokens = 8 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%t) : !agent.text
}

// CHECK: {{.*}}input-type.mlir:8:3: error: cannot parse the IR: agent.speech_to_text @stt: input of type !agent.text is not accepted; expected !agent.audio
// CHECK-NOT: internal error
