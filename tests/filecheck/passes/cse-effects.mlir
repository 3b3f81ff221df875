// RUN: hetc opt %s -p cse,dce | filecheck %s
// cse with the ops' effects (dialects/task.py): two searches of one index with the same settings are still
// two nodes (their symbols differ), so cse merges nothing; it does not move or drop the store written between
// them or the tool call, and dce afterwards erases only the pure work nobody reads.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %a = task.vector_search @first(%q) {node = "first", n_vectors = 100 : i64, dim = 8 : i64, precision = "fp32", index = "flat", top_k = 4 : i64} : (!agent.text) -> !agent.documents
  %s = task.memory_store @remember(%q) {node = "remember", latency_ms = 1.000000e+00 : f64, n_vectors = 100 : i64, dim = 8 : i64, precision = "fp16"} : (!agent.text) -> !agent.json
  %b = task.vector_search @second(%q) {node = "second", n_vectors = 100 : i64, dim = 8 : i64, precision = "fp32", index = "flat", top_k = 4 : i64} : (!agent.text) -> !agent.documents
  %t = task.tool_lookup @fetch(%q) {node = "fetch", tool = "web", latency_ms = 5.000000e+01 : f64, request_kb = 1.000000e+00 : f64, response_kb = 1.000000e+00 : f64} : (!agent.text) -> !agent.documents
  %x = task.compute @unused(%q) {node = "unused", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%a, %b) : !agent.documents, !agent.documents
}

// CHECK:      [[A:%.*]] = task.vector_search @first(
// CHECK-NEXT: task.memory_store @remember(
// CHECK-NEXT: [[B:%.*]] = task.vector_search @second(
// CHECK-NEXT: task.tool_lookup @fetch(
// CHECK-NOT:  @unused
// CHECK-NEXT: agent.output @o([[A]], [[B]]) : !agent.documents, !agent.documents
