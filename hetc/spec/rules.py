"""The vocabulary of spec fields: FieldRule (type, unit, limit, default, docs of one key), the limits past which
a value is a mistake, the value vocabularies, and the rules of the parts of a spec that are not nodes
(model architectures, top-level keys).

The node kinds' fields are not listed here: each `agent` op declares its kind's fields with FieldRules
(hetc/dialects/agent/), and hetc.spec.fields reads them from there. This module imports nothing of the IR, so
the dialect can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dc_fields
from typing import Any

from hetc.model.models import MODEL_KINDS, PRECISION_BYTES, ModelArch

# ---- value vocabularies -------------------------------------------------------------------------------

PRECISIONS = tuple(PRECISION_BYTES)  # fp32 bf16 fp16 fp8 int8 int4 fp4
INPUT_PAYLOADS = ("text", "tokens", "audio", "embedding", "documents", "json")
KV_PLACEMENTS = ("local", "remote", "disaggregated")
VECTOR_INDEXES = ("flat", "hnsw")
# element-wise / small kernels a compute node may name so the code generator can emit it
COMPUTE_OPS = ("none", "add", "mul", "relu", "gelu", "silu", "rmsnorm", "softmax", "top_k", "top_p",
               "l2_normalize", "mean_pool", "dot", "cosine", "quantize_fp8", "quantize_int8")
PERCENTILES = ("p50", "p90", "p95", "p99")
OBJECTIVES = ("tokens_per_dollar",)
OFFLINE_VOLUME_KEYS = ("tokens_per_day", "requests", "deadline_h")
PRICING_MODES = ("ownership", "cloud")
KV_CACHE_MODEL_KINDS = ("decoder", "encoder_decoder")  # models that keep a KV cache
EMBED_MODEL_KINDS = ("encoder",)  # models that embed text into vectors

# ---- limits: values past these are mistakes (a unit slip), not workloads ------------------------------

@dataclass(frozen=True)
class Limit:
    maximum: float
    reason: str


MAX_TOKENS = Limit(10_000_000, "more tokens than any model's context window")
MAX_MS = Limit(86_400_000, "24 hours; hetc plans request latencies, not multi-day jobs")
MAX_AUDIO_S = Limit(86_400, "24 hours of audio per request")
MAX_KB = Limit(1e9, "1 TB per request")
MAX_VECTORS = Limit(1e12, "a trillion vectors; model a larger index as a tool service")
MAX_DIM = Limit(65_536, "no embedding model has vectors longer than 65536")
MAX_TOP_K = Limit(100_000, "a retrieval returns at most 100000 results")
MAX_RPS = Limit(1e9, "a billion requests per second")
MAX_OFFLINE_REQUESTS = Limit(1e15, "a thousand trillion requests")
MAX_TOKENS_PER_DAY = Limit(1e16, "ten quadrillion tokens a day")
MAX_DEADLINE_H = Limit(8760, "one year")
MAX_ITERATIONS = Limit(10_000, "the plan multiplies the loop body by this bound")
MAX_DEVICES = Limit(1_000_000, "a million devices of one class")
MAX_BYTES = Limit(1e12, "1 TB per request")
MAX_LAYERS = Limit(10_000, "no model has more than 10000 layers")
MAX_WIDTH = Limit(1 << 20, "wider than any published model")
MAX_VOCAB = Limit(100_000_000, "larger than any published vocabulary")
MAX_PARAMS = Limit(1e15, "a quadrillion parameters")
# Agent files including agent files: each level is a nested agent (loading and building IR recurse per
# level, not per node); real agents nest a few levels.
MAX_AGENT_FILE_NESTING = 32

REQUIRED: Any = object()  # FieldRule.default: the key must be given
ABSENT: Any = object()  # FieldRule.default: optional with no value (the kind's checks may fill it in)


@dataclass(frozen=True)
class FieldRule:
    """One key of a mapping: its type, unit, default and range, and the words docs/spec.md shows for it."""

    name: str
    type: str  # "int", "number", "string", "choice", "bool", "model", "graph"
    unit: str = ""  # shown in errors: "expected a positive integer (tokens)"
    default: Any = ABSENT
    choices: tuple[str, ...] = ()
    allow_zero: bool = False
    limit: Limit | None = None
    model_kinds: tuple[str, ...] = MODEL_KINDS  # type "model": the model kinds the field accepts
    doc: str = ""  # what the field means (docs/spec.md's "meaning" column)
    default_doc: str = ""  # the default in words, where it is derived ("the node id")
    type_doc: str = ""  # the type in words, where the type alone does not say it
    in_context: bool = False  # tokens that must fit in the context window of the model the node runs


TOKENS: dict[str, Any] = dict(unit="tokens", limit=MAX_TOKENS)
MS: dict[str, Any] = dict(unit="milliseconds", limit=MAX_MS)
KB: dict[str, Any] = dict(unit="kilobytes", limit=MAX_KB)


# ModelArch fields a spec may set under `arch:` or `overrides:`
ARCH_RULES: dict[str, FieldRule] = {r.name: r for r in (
    FieldRule("name", "string",
              default_doc="the model id", doc="display name"),
    FieldRule("kind", "choice", choices=MODEL_KINDS,
              doc="what the model is"),
    FieldRule("n_layers", "int", unit="layers", limit=MAX_LAYERS,
              doc="decoder layers (encoder layers for an encoder)"),
    FieldRule("d_model", "int", unit="hidden size", limit=MAX_WIDTH,
              doc="hidden size; divisible by `n_heads`"),
    FieldRule("n_heads", "int", unit="attention heads", limit=MAX_WIDTH,
              doc="attention heads; divisible by `n_kv_heads`"),
    FieldRule("n_kv_heads", "int", unit="key/value heads", limit=MAX_WIDTH,
              default_doc="= `n_heads`", doc="key/value heads (grouped-query attention)"),
    FieldRule("d_ff", "int", unit="MLP width", limit=MAX_WIDTH,
              doc="MLP inner width"),
    FieldRule("vocab_size", "int", unit="tokens", limit=MAX_VOCAB,
              doc="vocabulary size (tokens)"),
    FieldRule("max_context", "int", unit="tokens", limit=MAX_TOKENS,
              doc="context window (tokens); node token counts must fit in it"),
    FieldRule("n_experts", "int", unit="experts", allow_zero=True, limit=MAX_WIDTH,
              doc="MoE experts per layer (0 = dense)"),
    FieldRule("experts_per_token", "int", unit="experts", allow_zero=True, limit=MAX_WIDTH,
              doc="experts each token uses; 1..`n_experts` when `n_experts` > 0"),
    FieldRule("encoder_layers", "int", unit="layers", allow_zero=True, limit=MAX_LAYERS,
              doc="encoder layers of an `encoder_decoder` model (required > 0 there)"),
    FieldRule("encoder_frames", "int", unit="positions", allow_zero=True, limit=MAX_WIDTH,
              doc="encoder positions per 30 s audio window; 0 means Whisper's 1500"),
    FieldRule("tied_embeddings", "bool",
              doc="input and output embeddings share weights"),
    FieldRule("params_override", "int", unit="parameters", allow_zero=True, limit=MAX_PARAMS,
              doc="published parameter count when the formula does not fit (0 = computed)"),
    FieldRule("source", "string",
              doc="where the numbers come from"),
    FieldRule("head_dim_override", "int", unit="head size", allow_zero=True, limit=MAX_WIDTH,
              doc="head size when it is not `d_model / n_heads` (Gemma, Qwen3)"),
    FieldRule("moe_d_ff", "int", unit="MLP width", allow_zero=True, limit=MAX_WIDTH,
              doc="MLP width of one routed expert (0 = `d_ff`)"),
    FieldRule("n_shared_experts", "int", unit="experts", allow_zero=True, limit=MAX_WIDTH,
              doc="always-on shared experts per MoE layer (DeepSeek, Qwen MoE)"),
    FieldRule("first_dense_layers", "int", unit="layers", allow_zero=True, limit=MAX_LAYERS,
              doc="leading layers with a dense MLP in an MoE model"),
    FieldRule("kv_lora_rank", "int", unit="latent size", allow_zero=True, limit=MAX_WIDTH,
              doc="multi-head latent attention: latent KV size per token and layer (DeepSeek-V3: 512)"),
    FieldRule("qk_rope_head_dim", "int", unit="head size", allow_zero=True, limit=MAX_WIDTH,
              doc="MLA rotary key size cached beside the latent (DeepSeek-V3: 64)"),
    FieldRule("sliding_window", "int", unit="tokens", allow_zero=True, limit=MAX_TOKENS,
              doc="window of the sliding-window layers (tokens)"),
    FieldRule("sliding_layers", "int", unit="layers", allow_zero=True, limit=MAX_LAYERS,
              doc="how many layers use the window (Mistral: all; Gemma 2: half)"),
    FieldRule("gated_mlp", "bool",
              doc="gated (3-matrix SwiGLU/GeGLU) MLP in decoders; false for a 2-matrix MLP"),
    FieldRule("hf_repo", "string",
              doc="Hugging Face repository id the architecture comes from"),
    FieldRule("engine", "choice", choices=("", "vllm", "sglang", "trtllm", "vllm-gaudi", "lmdeploy", "gpt-fast"),
              type_doc='`vllm` `sglang` `trtllm` `vllm-gaudi` `lmdeploy` `gpt-fast` or `""`',
              doc='serving engine the cost model assumes (docs/cost-model.md#engines); `""` = vllm-gaudi on Gaudi, '
                  'vllm elsewhere. Also accepted beside `preset`/`precision` in a model entry'),
)}
assert set(ARCH_RULES) == {f.name for f in dc_fields(ModelArch)}
ARCH_REQUIRED = ("kind", "n_layers", "d_model", "n_heads", "d_ff", "vocab_size")

TOP_KEYS = ("hetc", "name", "description", "slo", "traffic", "models", "nodes", "edges", "hardware")
INCLUDED_FILE_KEYS = ("hetc", "name", "description", "models", "nodes", "edges")


def arch_problems(arch: ModelArch) -> list[tuple[str, str]]:
    """Rules across an architecture's fields: (the field to blame, message). The spec loader reports them at
    the YAML key, the agent.model verifier on hand-written IR."""
    problems = []
    if arch.n_heads < 1 or arch.n_kv_heads < 1:
        problems.append(("n_heads", f"n_heads ({arch.n_heads}) and n_kv_heads ({arch.n_kv_heads}) must be >= 1"))
    elif arch.d_model % arch.n_heads:
        problems.append(("d_model", f"d_model {arch.d_model} is not divisible by n_heads {arch.n_heads}"))
    elif arch.n_heads % arch.n_kv_heads:
        problems.append(("n_kv_heads", f"n_heads {arch.n_heads} is not divisible by n_kv_heads {arch.n_kv_heads} "
                                       "(grouped-query attention shares each key/value head among a whole number "
                                       "of query heads)"))
    if arch.n_experts and not 1 <= arch.experts_per_token <= arch.n_experts:
        problems.append(("experts_per_token", f"experts_per_token must be between 1 and n_experts "
                                              f"({arch.n_experts}), got {arch.experts_per_token}"))
    if not arch.n_experts and arch.experts_per_token:
        problems.append(("experts_per_token", "experts_per_token needs n_experts > 0 (a mixture-of-experts model)"))
    if arch.kind == "encoder_decoder" and not arch.encoder_layers:
        problems.append(("encoder_layers", "an encoder_decoder model needs encoder_layers > 0"))
    return problems
