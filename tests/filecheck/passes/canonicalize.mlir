// RUN: hetc opt %s -p canonicalize --generic | hetc opt - | filecheck %s
// canonicalize has no hetc patterns to apply: the graph comes out as it went in, and its generic form
// (with locations) reads back to the same custom form, symbol names, properties and types included.

agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %a = agent.llm @"answer ü"(%q) {model = @chat, input_tokens = 512 : i64, output_tokens = 128 : i64} : (!agent.text) -> !agent.text
  %b = agent.branch @"answer->o"(%a) {probability = 5.000000e-01 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%b) : !agent.text
}

// CHECK:      builtin.module {
// CHECK-NEXT:   agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}
// CHECK-NEXT:   agent.graph @g {
// CHECK-NEXT:     [[Q:%.*]] = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
// CHECK-NEXT:     [[A:%.*]] = agent.llm @"answer ü"([[Q]]) {model = @chat, input_tokens = 512 : i64, output_tokens = 128 : i64} : (!agent.text) -> !agent.text
// CHECK-NEXT:     [[B:%.*]] = agent.branch @"answer->o"([[A]]) {probability = 5.000000e-01 : f64} : (!agent.text) -> !agent.text
// CHECK-NEXT:     agent.output @o([[B]]) : !agent.text
// CHECK-NEXT:   }
// CHECK-NEXT: }
