// RUN: not hetc opt %s 2>&1 | filecheck %s
// A lookup returns at most the vectors its store holds.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.memory_lookup @docs(%q) {n_vectors = 4 : i64, dim = 8 : i64, precision = "fp16", index = "flat", top_k = 8 : i64, query_tokens = 16 : i64} : (!agent.text) -> !agent.documents
  agent.output @o(%r) : !agent.documents
}

// CHECK: {{.*}}top-k.mlir:6:3: error: invalid IR after input: agent.memory_lookup @docs: top_k is larger than n_vectors
// CHECK-NOT: internal error
