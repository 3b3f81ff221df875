// RUN: not hetc opt %s 2>&1 | filecheck %s
// Fields with a fixed set of values (index kinds, precisions, stores) take one of them.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %r = agent.memory_lookup @docs(%q) {n_vectors = 100 : i64, dim = 8 : i64, precision = "fp16", index = "btree", top_k = 8 : i64, query_tokens = 16 : i64} : (!agent.text) -> !agent.documents
  agent.output @o(%r) : !agent.documents
}

// CHECK: {{.*}}choice.mlir:6:3: error: invalid IR after input: agent.memory_lookup @docs: index must be one of flat|hnsw, got 'btree'
// CHECK-NOT: internal error
