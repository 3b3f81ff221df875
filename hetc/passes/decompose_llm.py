"""`decompose-llm`: agent.llm -> task.prefill -> task.kv_transfer -> task.decode.

Prefill and decode are bound by different resources (compute vs memory bandwidth), so they are placed
separately; the KV cache is the typed value between them. Mixture-of-experts models get the paper's
Figure 7 shape in each phase: gate (route tokens to experts) -> experts (the phase op) -> merge.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.traits import SymbolTable

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.passes.common import i64, task


class DecomposeLLM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.LLMOp, rewriter: PatternRewriter, /):
        model = SymbolTable.lookup_symbol(op, op.model)
        arch = model.arch.data if isinstance(model, A.ModelOp) else {}
        n_experts = arch["n_experts"].value.data if "n_experts" in arch else 0
        k = arch["experts_per_token"].value.data if "experts_per_token" in arch else 0
        tokens_in, tokens_out = op.input_tokens, op.output_tokens
        ops = []

        def moe(phase: str, inputs, result_type):
            gate = task(T.GateOp, op, f"{phase}.gate", inputs[:1], A.TokensType(), model=op.model,
                        phase=StringAttr(phase), n_experts=i64(n_experts), experts_per_token=i64(k))
            ops.append(gate)
            return [*inputs, gate.result]

        prefill_in = list(op.inputs)
        if n_experts:
            prefill_in = moe("prefill", prefill_in, A.TokensType())
        prefill = task(T.PrefillOp, op, "prefill", prefill_in, A.KVType(), model=op.model, input_tokens=tokens_in)
        ops.append(prefill)
        kv = prefill.result
        if n_experts:
            merge = task(T.MergeOp, op, "prefill.merge", [kv], A.KVType(), model=op.model, phase=StringAttr("prefill"))
            ops.append(merge)
            kv = merge.result
        transfer = task(T.KVTransferOp, op, "kv", [kv], A.KVType(), model=op.model, tokens=tokens_in)
        ops.append(transfer)
        decode_in = [transfer.result]
        if n_experts:
            decode_in = moe("decode", decode_in, A.TokensType())
        decode = task(T.DecodeOp, op, "decode", decode_in, A.TextType(), model=op.model,
                      input_tokens=tokens_in, output_tokens=tokens_out)
        ops.append(decode)
        out = decode.result
        if n_experts:
            merge = task(T.MergeOp, op, "decode.merge", [out], A.TextType(), model=op.model, phase=StringAttr("decode"))
            ops.append(merge)
            out = merge.result
        rewriter.replace(op, ops, [out])


@dataclass(frozen=True)
class DecomposeLLMPass(ModulePass):
    name = "decompose-llm"

    def apply(self, ctx: Context, op: ModuleOp) -> bool:  # whether it changed the module
        return PatternRewriteWalker(DecomposeLLM(), apply_recursively=False).rewrite_module(op)
