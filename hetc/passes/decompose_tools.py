"""`decompose-tools`: tools and memory lookups into their granular parts.

agent.tool -> task.tool_lookup (the external round trip) [-> task.compute for local processing];
agent.memory_lookup -> [task.embed of the query] -> task.vector_search [-> task.rerank].
The parts run on different resources: the lookup waits on the network, the compute needs a CPU core,
the embedding an accelerator or CPU, and the scan memory bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.passes.common import i64, task


class DecomposeTool(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.ToolOp, rewriter: PatternRewriter, /):
        props = dict(tool=op.tool, latency_ms=op.latency_ms, request_kb=op.request_kb, response_kb=op.response_kb)
        if op.latency_p99_ms is not None:
            props["latency_p99_ms"] = op.latency_p99_ms
        lookup = task(T.ToolLookupOp, op, "lookup", list(op.inputs), A.DocumentsType(), **props)
        ops = [lookup]
        if op.compute_ms.value.data > 0:
            ops.append(task(T.ComputeOp, op, "compute", [lookup.result], A.DocumentsType(), cpu_ms=op.compute_ms))
        rewriter.replace(op, ops, [ops[-1].results[0]])


class DecomposeMemoryLookup(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.MemoryLookupOp, rewriter: PatternRewriter, /):
        ops = []
        query = list(op.inputs)
        if op.embed_model is not None:
            embed = task(T.EmbedOp, op, "embed", query, A.EmbeddingType(), model=op.embed_model,
                         tokens=op.query_tokens)
            ops.append(embed)
            query = [embed.result]
        search = task(T.VectorSearchOp, op, "search", query, A.DocumentsType(), n_vectors=op.n_vectors,
                      dim=op.dim, precision=op.precision, index=op.index, top_k=op.top_k)
        ops.append(search)
        if op.rerank_model is not None:
            # a cross-encoder reads query + each of the top_k documents (~256 tokens each)
            tokens = i64(op.top_k.value.data * (op.query_tokens.value.data + 256))
            ops.append(task(T.RerankOp, op, "rerank", [search.result], A.DocumentsType(),
                            model=op.rerank_model, tokens=tokens))
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class DecomposeToolsPass(ModulePass):
    name = "decompose-tools"

    def apply(self, ctx: Context, op: ModuleOp) -> bool:  # whether it changed the module
        # dead code is the dce pass's job: a decomposition keeps every op (task ops are Pure now)
        applier = GreedyRewritePatternApplier([DecomposeTool(), DecomposeMemoryLookup()], dce_enabled=False)
        return PatternRewriteWalker(applier, apply_recursively=False).rewrite_module(op)
