// RUN: not hetc opt %s 2>&1 | filecheck %s
// A model node names an agent.model symbol that exists.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %a = agent.llm @answer(%q) {model = @gpt, input_tokens = 512 : i64, output_tokens = 64 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%a) : !agent.text
}

// CHECK: {{.*}}unknown-model.mlir:7:3: error: invalid IR after input: agent.llm @answer: unknown model @gpt
// CHECK-NOT: internal error
