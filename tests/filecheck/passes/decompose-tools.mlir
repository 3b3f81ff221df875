// RUN: hetc opt %s -p decompose-tools | filecheck %s
// decompose-tools: agent.tool -> task.tool_lookup (the network round trip) -> task.compute (local work, only
// when compute_ms > 0); agent.memory_lookup -> task.embed (with embed_model) -> task.vector_search ->
// task.rerank (with rerank_model). Each part feeds the next by SSA; the node's users read the last part.

agent.model @emb {arch = #agent.arch<kind = "encoder", n_layers = 12, d_model = 768, n_heads = 12, n_kv_heads = 12, d_ff = 3072, vocab_size = 30522>, precision = "bf16", kv_precision = "bf16"}
agent.graph @g {
  %q = agent.input @q() {tokens = 32 : i64} : () -> !agent.text
  %w = agent.tool @web(%q) {tool = "search", latency_ms = 2.000000e+02 : f64, compute_ms = 5.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 8.000000e+00 : f64} : (!agent.text) -> !agent.documents
  %c = agent.tool @clock(%q) {tool = "time", latency_ms = 1.000000e+01 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 1.000000e+00 : f64} : (!agent.text) -> !agent.documents
  %r = agent.memory_lookup @docs(%q) {n_vectors = 1000000 : i64, dim = 768 : i64, precision = "fp16", index = "hnsw", top_k = 8 : i64, query_tokens = 32 : i64, embed_model = @emb, rerank_model = @emb} : (!agent.text) -> !agent.documents
  agent.output @o(%w, %c, %r) : !agent.documents, !agent.documents, !agent.documents
}

// CHECK:      [[Q:%.*]] = agent.input @q()
// CHECK-NEXT: [[WL:%.*]] = task.tool_lookup @web.lookup([[Q]]) {node = "web", tool = "search", latency_ms = 2.000000e+02 : f64, request_kb = 1.000000e+00 : f64, response_kb = 8.000000e+00 : f64} : (!agent.text) -> !agent.documents
// CHECK-NEXT: [[WC:%.*]] = task.compute @web.compute([[WL]]) {node = "web", cpu_ms = 5.000000e+00 : f64} : (!agent.documents) -> !agent.documents
// CHECK-NEXT: [[CL:%.*]] = task.tool_lookup @clock.lookup([[Q]]) {node = "clock", tool = "time"
// CHECK-NEXT: [[E:%.*]] = task.embed @docs.embed([[Q]]) {node = "docs", model = @emb, tokens = 32 : i64} : (!agent.text) -> !agent.embedding
// CHECK-NEXT: [[S:%.*]] = task.vector_search @docs.search([[E]]) {node = "docs", n_vectors = 1000000 : i64, dim = 768 : i64, precision = "fp16", index = "hnsw", top_k = 8 : i64} : (!agent.embedding) -> !agent.documents
// CHECK-NEXT: [[R:%.*]] = task.rerank @docs.rerank([[S]]) {node = "docs", model = @emb, tokens = {{[0-9]+}} : i64} : (!agent.documents) -> !agent.documents
// CHECK-NEXT: agent.output @o([[WC]], [[CL]], [[R]])
// CHECK-NOT:  agent.tool
// CHECK-NOT:  agent.memory_lookup
// CHECK-NOT:  @clock.compute
