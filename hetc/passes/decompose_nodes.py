"""`decompose-nodes`: the remaining graph nodes into task ops, one per node.

speech_to_text -> task.encoder (encoder over the audio frames, then a short decode of the transcript);
model -> task.encoder; text_to_speech -> task.tts; embedding -> task.embed; compute -> task.compute;
memory_store -> [task.embed] -> task.memory_store; kv_cache -> task.kv_transfer (moving the cache to its store);
guardrail -> task.guardrail.
"""

from __future__ import annotations

import math
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
from xdsl.traits import SymbolTable

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.model.costmodel import AUDIO_WINDOW_S, WHISPER_WINDOW_FRAMES
from hetc.passes.common import i64, task


class SpeechToText(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.SpeechToTextOp, rewriter: PatternRewriter, /):
        model = SymbolTable.lookup_symbol(op, op.model)
        # encoder_frames 0 (the documented default, also when hand-written IR leaves it out) means Whisper's
        # window, as in the cost model
        written = model.arch.data.get("encoder_frames") if isinstance(model, A.ModelOp) else None
        frames = written.value.data if written is not None else 0
        frames = frames or WHISPER_WINDOW_FRAMES
        windows = max(1, math.ceil(op.audio_seconds.value.data / AUDIO_WINDOW_S))
        rewriter.replace(op, task(T.EncoderOp, op, "", list(op.inputs), A.TextType(), model=op.model,
                                  input_tokens=i64(frames * windows), output_tokens=op.output_tokens))


class ModelCall(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.ModelCallOp, rewriter: PatternRewriter, /):
        rewriter.replace(op, task(T.EncoderOp, op, "", list(op.inputs), op.result.type, model=op.model,
                                  input_tokens=op.input_tokens, output_tokens=op.output_tokens))


class TextToSpeech(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.TextToSpeechOp, rewriter: PatternRewriter, /):
        rewriter.replace(op, task(T.TTSOp, op, "", list(op.inputs), A.AudioType(), model=op.model,
                                  input_tokens=op.input_tokens, audio_seconds=op.audio_seconds))


class Embedding(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.EmbeddingOp, rewriter: PatternRewriter, /):
        rewriter.replace(op, task(T.EmbedOp, op, "", list(op.inputs), A.EmbeddingType(), model=op.model,
                                  tokens=op.tokens))


class Compute(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.ComputeOp, rewriter: PatternRewriter, /):
        props = {"cpu_ms": op.cpu_ms}
        if op.kernel is not None:
            props["kernel"] = op.kernel
        rewriter.replace(op, task(T.ComputeOp, op, "", list(op.inputs), op.result.type, **props))


class MemoryStore(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.MemoryStoreOp, rewriter: PatternRewriter, /):
        ops = []
        inputs = list(op.inputs)
        if op.embed_model is not None:
            ops.append(task(T.EmbedOp, op, "embed", inputs, A.EmbeddingType(), model=op.embed_model, tokens=op.tokens))
            inputs = [ops[-1].results[0]]
        ops.append(task(T.MemoryStoreOp, op, "store" if ops else "", inputs, A.JsonType(), latency_ms=op.latency_ms,
                        n_vectors=op.n_vectors, dim=op.dim, precision=op.precision))
        rewriter.replace(op, ops, [ops[-1].results[0]])


class KVCache(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.KVCacheOp, rewriter: PatternRewriter, /):
        rewriter.replace(op, task(T.KVTransferOp, op, "", list(op.inputs), A.KVType(), model=op.model,
                                  tokens=op.tokens, store=op.store))


class Guardrail(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: A.GuardrailOp, rewriter: PatternRewriter, /):
        rewriter.replace(op, task(T.GuardrailOp, op, "", list(op.inputs), A.TextType(), model=op.model,
                                  input_tokens=op.input_tokens, output_tokens=op.output_tokens))


@dataclass(frozen=True)
class DecomposeNodesPass(ModulePass):
    name = "decompose-nodes"

    def apply(self, ctx: Context, op: ModuleOp) -> bool:  # whether it changed the module
        patterns = [SpeechToText(), ModelCall(), TextToSpeech(), Embedding(), Compute(), MemoryStore(), KVCache(),
                    Guardrail()]
        # dead code is the dce pass's job: a decomposition keeps every op (task ops are Pure now)
        applier = GreedyRewritePatternApplier(patterns, dce_enabled=False)
        return PatternRewriteWalker(applier, apply_recursively=False).rewrite_module(op)
