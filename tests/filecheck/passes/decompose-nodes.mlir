// RUN: hetc opt %s -p decompose-nodes | filecheck %s
// decompose-nodes turns each remaining model and CPU node into its task op: speech_to_text -> task.encoder
// (input_tokens = encoder frames of the audio windows), text_to_speech -> task.tts, embedding -> task.embed,
// compute -> task.compute, memory_store -> task.embed -> task.memory_store, kv_cache -> task.kv_transfer. The
// task ops keep the node's name, and its uses move to the new result.

agent.model @whisper {arch = #agent.arch<kind = "encoder_decoder", n_layers = 32, d_model = 1280, n_heads = 20, n_kv_heads = 20, d_ff = 5120, vocab_size = 51866, encoder_layers = 32, encoder_frames = 1500>, precision = "fp16", kv_precision = "fp16"}
agent.model @voice {arch = #agent.arch<kind = "tts", n_layers = 12, d_model = 768, n_heads = 12, n_kv_heads = 12, d_ff = 3072, vocab_size = 8192>, precision = "fp16", kv_precision = "fp16"}
agent.model @emb {arch = #agent.arch<kind = "encoder", n_layers = 12, d_model = 768, n_heads = 12, n_kv_heads = 12, d_ff = 3072, vocab_size = 30522>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %mic = agent.input @mic() {audio_seconds = 4.500000e+01 : f64} : () -> !agent.audio
  %t = agent.speech_to_text @stt(%mic) {model = @whisper, audio_seconds = 4.500000e+01 : f64, output_tokens = 64 : i64} : (!agent.audio) -> !agent.text
  %p = agent.compute @parse(%t) {cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.json
  %e = agent.embedding @vec(%t) {model = @emb, tokens = 64 : i64} : (!agent.text) -> !agent.embedding
  %s = agent.memory_store @remember(%p) {n_vectors = 10000 : i64, dim = 768 : i64, precision = "fp16", tokens = 64 : i64, latency_ms = 1.000000e+00 : f64, embed_model = @emb} : (!agent.json) -> !agent.json
  %a = agent.text_to_speech @speak(%t) {model = @voice, input_tokens = 64 : i64, audio_seconds = 5.000000e+00 : f64} : (!agent.text) -> !agent.audio
  agent.output @o(%a, %e, %s) : !agent.audio, !agent.embedding, !agent.json
}

// Two 30 s windows of 1,500 frames each for 45 s of audio:
// CHECK:      [[MIC:%.*]] = agent.input @mic()
// CHECK-NEXT: [[T:%.*]] = task.encoder @stt([[MIC]]) {node = "stt", model = @whisper, input_tokens = 3000 : i64, output_tokens = 64 : i64} : (!agent.audio) -> !agent.text
// CHECK-NEXT: [[P:%.*]] = task.compute @parse([[T]]) {node = "parse", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.json
// CHECK-NEXT: [[E:%.*]] = task.embed @vec([[T]]) {node = "vec", model = @emb, tokens = 64 : i64} : (!agent.text) -> !agent.embedding
// CHECK-NEXT: [[SE:%.*]] = task.embed @remember.embed([[P]]) {node = "remember", model = @emb, tokens = 64 : i64} : (!agent.json) -> !agent.embedding
// CHECK-NEXT: [[S:%.*]] = task.memory_store @remember.store([[SE]]) {node = "remember", latency_ms = 1.000000e+00 : f64, n_vectors = 10000 : i64, dim = 768 : i64, precision = "fp16"} : (!agent.embedding) -> !agent.json
// CHECK-NEXT: [[A:%.*]] = task.tts @speak([[T]]) {node = "speak", model = @voice, input_tokens = 64 : i64, audio_seconds = 5.000000e+00 : f64} : (!agent.text) -> !agent.audio
// CHECK-NEXT: agent.output @o([[A]], [[E]], [[S]]) : !agent.audio, !agent.embedding, !agent.json
// CHECK-NOT:  agent.speech_to_text
