// RUN: hetc opt %s -p dce | filecheck %s
// dce erases work nobody reads, as the ops state their effects (dialects/task.py): a task whose result
// nobody reads is dead work and goes (a Pure compute, a read-only vector search); a store writes to its
// vector database and a tool call reaches the outside world, so both stay even unread; the input and the
// output are the graph's edges to the world and stay.

agent.graph @g {
  %q = agent.input @q() {tokens = 64 : i64} : () -> !agent.text
  %used = task.compute @used(%q) {node = "used", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  %dead = task.compute @dead(%q) {node = "dead", cpu_ms = 2.000000e+00 : f64} : (!agent.text) -> !agent.text
  %look = task.vector_search @unread_search(%q) {node = "unread_search", n_vectors = 100 : i64, dim = 8 : i64, precision = "fp32", index = "flat", top_k = 4 : i64} : (!agent.text) -> !agent.documents
  %s = task.memory_store @remember(%q) {node = "remember", latency_ms = 1.000000e+00 : f64, n_vectors = 100 : i64, dim = 8 : i64, precision = "fp16"} : (!agent.text) -> !agent.json
  %t = task.tool_lookup @notify(%q) {node = "notify", tool = "mail", latency_ms = 5.000000e+01 : f64, request_kb = 1.000000e+00 : f64, response_kb = 1.000000e+00 : f64} : (!agent.text) -> !agent.documents
  agent.output @o(%used) : !agent.text
}

// CHECK:     agent.input @q
// CHECK-NEXT: task.compute @used
// CHECK-NOT: @dead
// CHECK-NOT: @unread_search
// CHECK-NEXT: task.memory_store @remember
// CHECK-NEXT: task.tool_lookup @notify
// CHECK-NEXT: agent.output @o
