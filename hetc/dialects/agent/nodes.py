"""The work node kinds of the `agent` dialect, one op per spec kind: model calls (llm, speech_to_text,
text_to_speech, embedding, model, kv_cache, guardrail), tools, vector memory and CPU compute. Each op owns
its spec fields (spec_field properties), the payloads it accepts and the one it produces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from xdsl.irdl import irdl_op_definition, result_def, var_operand_def
from xdsl.utils.exceptions import VerifyException

from hetc.dialects.agent.base import ModelNodeOp, NodeOp
from hetc.dialects.agent.payloads import (
    LLM_INPUTS,
    AudioType,
    DocumentsType,
    EmbeddingType,
    JsonType,
    KVType,
    Payload,
    PayloadType,
    TextType,
    TokensType,
)
from hetc.dialects.spec_fields import model_field, spec_field
from hetc.model.arch import MODEL_KINDS
from hetc.spec.rules import (
    COMPUTE_OPS,
    EMBED_MODEL_KINDS,
    KB,
    KV_CACHE_MODEL_KINDS,
    KV_PLACEMENTS,
    MAX_AUDIO_S,
    MAX_DIM,
    MAX_TOP_K,
    MAX_VECTORS,
    MS,
    PRECISIONS,
    REQUIRED,
    TOKENS,
    VECTOR_INDEXES,
)


@irdl_op_definition
class LLMOp(ModelNodeOp):
    name = "agent.llm"
    SPEC_KIND: ClassVar[str] = "llm"
    SPEC_DOC: ClassVar[str] = "A decoder language model call: prefill of the input, then decode of the output."
    result = result_def(TextType)
    model = model_field(("decoder",), "the language model")
    input_tokens = spec_field("int", default=512, **TOKENS, in_context=True, doc="prompt length")
    output_tokens = spec_field("int", default=256, **TOKENS, in_context=True, doc="tokens generated")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = LLM_INPUTS
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class SpeechToTextOp(ModelNodeOp):
    name = "agent.speech_to_text"
    SPEC_KIND: ClassVar[str] = "speech_to_text"
    SPEC_DOC: ClassVar[str] = "Speech recognition: audio in, text out."
    result = result_def(TextType)
    model = model_field(("encoder_decoder",), "the speech recognition model")
    audio_seconds = spec_field("number", unit="seconds", limit=MAX_AUDIO_S, doc="length of the audio transcribed",
                               default_doc="the largest `audio_seconds` of the audio `input` nodes feeding it "
                                           "directly, else 10")
    output_tokens = spec_field("int", default=64, **TOKENS, in_context=True, doc="tokens of text produced")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (AudioType,)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class TextToSpeechOp(ModelNodeOp):
    name = "agent.text_to_speech"
    SPEC_KIND: ClassVar[str] = "text_to_speech"
    SPEC_DOC: ClassVar[str] = "Speech synthesis: text in, audio out."
    result = result_def(AudioType)
    model = model_field(("tts",), "the speech synthesis model")
    input_tokens = spec_field("int", default=128, **TOKENS, in_context=True, doc="tokens of text spoken")
    audio_seconds = spec_field("number", unit="seconds", default=10.0, limit=MAX_AUDIO_S, doc="audio produced")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, JsonType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class EmbeddingOp(ModelNodeOp):
    name = "agent.embedding"
    SPEC_KIND: ClassVar[str] = "embedding"
    SPEC_DOC: ClassVar[str] = "Text to a vector with an encoder model."
    result = result_def(EmbeddingType)
    model = model_field(EMBED_MODEL_KINDS, "the embedding model")
    tokens = spec_field("int", default=256, **TOKENS, in_context=True, doc="tokens embedded")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, DocumentsType, JsonType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class ModelCallOp(ModelNodeOp):
    """Generic model execution (encoder only when output_tokens = 0)."""

    name = "agent.model_call"
    SPEC_KIND: ClassVar[str] = "model"
    SPEC_DOC: ClassVar[str] = "Generic model execution (a classifier, a reward model, a guard, ...)."
    result = result_def(PayloadType)
    model = model_field(MODEL_KINDS, "the model (any kind)")
    input_tokens = spec_field("int", default=512, **TOKENS, in_context=True, doc="tokens in")
    output_tokens = spec_field("int", default=0, allow_zero=True, **TOKENS, in_context=True,
                               doc="tokens generated; 0 = prefill / encoder only (an encoder model must have 0)")

    @classmethod
    def spec_payload(cls, attrs: Mapping[str, Any]) -> str | None:
        return "text" if attrs["output_tokens"] > 0 else "embedding"


@irdl_op_definition
class KVCacheOp(ModelNodeOp):
    name = "agent.kv_cache"
    SPEC_KIND: ClassVar[str] = "kv_cache"
    SPEC_DOC: ClassVar[str] = "A model's KV cache held between steps or requests (e.g. a conversation prefix)."
    result = result_def(KVType)
    model = model_field(KV_CACHE_MODEL_KINDS, "the model whose cache it is")
    tokens = spec_field("int", default=2048, **TOKENS, in_context=True, doc="cached context")
    store = spec_field("choice", "placement", default="local", choices=KV_PLACEMENTS, doc="where the cache lives")


@irdl_op_definition
class ToolOp(NodeOp):
    """An external tool call: a network round trip plus optional local CPU processing."""

    name = "agent.tool"
    SPEC_KIND: ClassVar[str] = "tool"
    SPEC_DOC: ClassVar[str] = "A call to an external service (web search, sandbox, HTTP API)."
    result = result_def(DocumentsType)
    tool = spec_field("string", default_doc="the node id", doc="the tool's name")
    latency_ms = spec_field("number", default=REQUIRED, **MS, doc="the service's typical round trip")
    latency_p99_ms = spec_field("number", optional=True, **MS, default_doc="= `latency_ms`",
                                doc="the round trip's p99; >= `latency_ms`")
    compute_ms = spec_field("number", default=0.0, allow_zero=True, **MS, doc="local CPU work per call (one core)")
    request_kb = spec_field("number", default=1.0, allow_zero=True, **KB, doc="bytes sent")
    response_kb = spec_field("number", default=4.0, allow_zero=True, **KB, doc="bytes received")

    def verify_(self) -> None:
        super().verify_()
        if self.latency_p99_ms is not None and self.latency_p99_ms.value.data < self.latency_ms.value.data:
            raise VerifyException(f"agent.tool @{self.node_id()}: latency_p99_ms is below latency_ms")


@irdl_op_definition
class MemoryLookupOp(NodeOp):
    """Retrieval from a vector store; with `embed_model`, the query is embedded first."""

    name = "agent.memory_lookup"
    SPEC_KIND: ClassVar[str] = "memory_lookup"
    SPEC_DOC: ClassVar[str] = "A vector-database search (FAISS, pgvector, ...)."
    SPEC_NOTES: ClassVar[str] = "`attrs[\"embed_model\"]` and `attrs[\"rerank_model\"]` hold the ids or `None`."
    result = result_def(DocumentsType)
    n_vectors = spec_field("int", default=REQUIRED, unit="vectors", limit=MAX_VECTORS, doc="index size")
    dim = spec_field("int", unit="vector elements", limit=MAX_DIM, default_doc="`embed_model`'s `d_model`",
                     doc="vector length; required without `embed_model`, must match it with one")
    precision = spec_field("choice", default="fp32", choices=PRECISIONS, doc="stored vector precision")
    index = spec_field("choice", default="flat", choices=VECTOR_INDEXES, doc="exhaustive scan or HNSW graph index")
    top_k = spec_field("int", unit="results", default=10, limit=MAX_TOP_K, doc="results returned; <= `n_vectors`")
    query_tokens = spec_field("int", default=64, **TOKENS, in_context=True,
                              doc="query text embedded by `embed_model`")
    embed_model = spec_field("model", optional=True, default=None, model_kinds=EMBED_MODEL_KINDS,
                             doc="when given, the lookup embeds the query first (`Node.model` is this model)")
    rerank_model = spec_field("model", optional=True, default=None, doc="a model that rescores the `top_k` results")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, EmbeddingType, JsonType, DocumentsType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes

    def verify_(self) -> None:
        super().verify_()
        if self.top_k.value.data > self.n_vectors.value.data:
            raise VerifyException(f"agent.memory_lookup @{self.node_id()}: top_k is larger than n_vectors")


@irdl_op_definition
class MemoryStoreOp(NodeOp):
    name = "agent.memory_store"
    SPEC_KIND: ClassVar[str] = "memory_store"
    SPEC_DOC: ClassVar[str] = "Writing to a vector store / episodic memory (the paper's observation store)."
    result = result_def(JsonType)
    n_vectors = spec_field("int", unit="vectors", default=1, limit=MAX_VECTORS, doc="vectors written per call")
    dim = spec_field("int", unit="vector elements", limit=MAX_DIM, default_doc="`embed_model`'s `d_model`",
                     doc="as for `memory_lookup`")
    precision = spec_field("choice", default="fp32", choices=PRECISIONS, doc="stored vector precision")
    tokens = spec_field("int", default=64, **TOKENS, in_context=True, doc="text embedded per call by `embed_model`")
    embed_model = spec_field("model", optional=True, default=None, model_kinds=EMBED_MODEL_KINDS,
                             doc="embeds before storing (`Node.model`)")
    latency_ms = spec_field("number", default=2.0, allow_zero=True, **MS, doc="the store's write latency")


@irdl_op_definition
class ComputeOp(NodeOp):
    """General-purpose CPU work (parsing, routing, filtering): cpu_ms on one core per invocation."""

    name = "agent.compute"
    SPEC_KIND: ClassVar[str] = "compute"
    SPEC_DOC: ClassVar[str] = "General-purpose CPU work: parsing, routing, filtering."
    result = result_def(PayloadType)
    cpu_ms = spec_field("number", default=REQUIRED, **MS, doc="work per invocation on one CPU core")
    kernel = spec_field("choice", "op", optional=True, default="none", choices=COMPUTE_OPS,
                        doc="a kernel the code generator may emit for this step")


@irdl_op_definition
class GuardrailOp(ModelNodeOp):
    """A safety classifier (e.g. Llama Guard 3) screens the text and passes it on or blocks it; the share it
    blocks is the probability on its out-edge (a blocked request goes no further)."""

    name = "agent.guardrail"
    SPEC_KIND: ClassVar[str] = "guardrail"
    SPEC_DOC: ClassVar[str] = (
        "A safety classifier (for example Llama Guard 3: presets `llama-guard-3-1b`, `llama-guard-3-8b`) screens "
        "the text and passes it on or blocks it; the share it blocks is the `probability` of its out-edge. Placed "
        "and priced as one batched pass of its model; hetc's runtime asks the served classifier for a verdict and "
        "ends an unsafe request with a refusal (docs/deploy.md).")
    result = result_def(TextType)
    model = model_field(("decoder",), "the classifier model")
    input_tokens = spec_field("int", default=512, **TOKENS, in_context=True,
                              doc="the text plus the classifier's policy prompt")
    output_tokens = spec_field("int", default=8, **TOKENS, in_context=True,
                               doc="the verdict: `safe`, or `unsafe` and the violated categories")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, DocumentsType, JsonType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes
