// RUN: hetc opt %s -p decompose-nodes | filecheck %s
// An arch without encoder_frames (a field whose default is 0) means Whisper's 1,500 frames per 30 s window,
// as in the cost model; hand-written IR may leave it out (decompose-nodes once failed with a KeyError here).

agent.model @asr {arch = #agent.arch<kind = "encoder_decoder", n_layers = 4, d_model = 384, n_heads = 6, n_kv_heads = 6, d_ff = 1536, vocab_size = 51865, encoder_layers = 4>, precision = "fp16", kv_precision = "fp16"}
agent.graph @g {
  %mic = agent.input @mic() {audio_seconds = 1.000000e+01 : f64} : () -> !agent.audio
  %t = agent.speech_to_text @stt(%mic) {model = @asr, audio_seconds = 1.000000e+01 : f64, output_tokens = 16 : i64} : (!agent.audio) -> !agent.text
  agent.output @o(%t) : !agent.text
}

// CHECK: task.encoder @stt(%{{.*}}) {node = "stt", model = @asr, input_tokens = 1500 : i64, output_tokens = 16 : i64} : (!agent.audio) -> !agent.text
