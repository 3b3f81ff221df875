"""Target-independent kernel descriptions: what each kernel computes, its parameters and its ABI.

Every kernel is defined once here:
- its *kind* and specialisation parameters (shapes, dtypes, top-k, block size), validated;
- its ABI: the ordered argument list (`kernel_args`), which every target maps to its own types
  (C header for cpu, PTX parameter layout for cuda, TPC tensors for gaudi);
- its semantics: the numpy reference in `hetc/targets/reference.py`, which the tests and the benchmark
  compare every target against.

The targets (`hetc/targets/cpu`, `hetc/targets/cuda`, `hetc/targets/gaudi`) generate code from a `KernelSpec`.
This module imports nothing heavy (no llvmlite, no numpy): the CLI imports it at top level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hetc.errors import HetcError, Loc

from .naming import c_identifier, is_safe_symbol

ParamValue = int | float | str | bool

# Kernel kinds (stable strings: they appear in plan.json).
SAMPLE = "sample_topk_topp"  # softmax + top-k + top-p (nucleus) sampling over logits, fused
VECTOR_SEARCH = "vector_search_topk"  # dot / cosine similarity of queries against a matrix, top-k
EMBED_POOL = "embed_pool_l2norm"  # masked mean pooling over tokens + L2 normalisation
KV_QUANTIZE = "kv_quantize"  # fp16 KV cache -> int8 / fp8 e4m3 codes + per-block f32 scales
KV_DEQUANTIZE = "kv_dequantize"  # the inverse
RMSNORM = "rmsnorm"
ELEMENTWISE = "elementwise"  # add / mul / gelu (tanh approximation)

KINDS = (SAMPLE, VECTOR_SEARCH, EMBED_POOL, KV_QUANTIZE, KV_DEQUANTIZE, RMSNORM, ELEMENTWISE)

ELEMENTWISE_OPS = ("add", "mul", "gelu")
SEARCH_METRICS = ("dot", "cosine")
KV_QDTYPES = ("int8", "fp8_e4m3")
MAX_TOP_K = 1024  # the top-k buffer lives in registers / stack / local memory on every target

DEFAULT_SAMPLE_TOP_K = 50  # Hugging Face transformers' GenerationConfig default
DEFAULT_SEARCH_TOP_K = 10
DEFAULT_KV_BLOCK_TOKENS = 16  # vLLM's default KV block size
DEFAULT_KV_QDTYPE = "fp8_e4m3"
DEFAULT_RMSNORM_EPS = 1e-5  # Llama 3 config.json rms_norm_eps

# Largest magnitude of each code type: int8 is symmetric [-127, 127]; fp8 e4m3 (OCP "e4m3fn") max normal 448.
QMAX = {"int8": 127.0, "fp8_e4m3": 448.0}

# Parameters each kind requires, with their Python type.
_PARAM_TYPES: dict[str, dict[str, type]] = {
    SAMPLE: {"vocab": int, "top_k": int},
    VECTOR_SEARCH: {"dim": int, "top_k": int, "metric": str},
    EMBED_POOL: {"dim": int},
    KV_QUANTIZE: {"n_layers": int, "n_kv_heads": int, "head_dim": int, "block_tokens": int, "qdtype": str},
    KV_DEQUANTIZE: {"n_layers": int, "n_kv_heads": int, "head_dim": int, "block_tokens": int, "qdtype": str},
    RMSNORM: {"dim": int, "eps": float},
    ELEMENTWISE: {"op": str},
}


@dataclass(frozen=True)
class Arg:
    """One kernel argument. ctype is one of: f32 i64 (scalars) or ptr types `[const ]{f32,i32,u16,u8}*`
    (u16 holds IEEE fp16 bits, u8 holds int8 two's complement or fp8 e4m3 codes)."""

    name: str
    ctype: str
    doc: str

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")

    @property
    def is_const(self) -> bool:
        return self.ctype.startswith("const ")

    @property
    def elem(self) -> str:
        """Element type of a pointer, or the scalar type."""
        return self.ctype.removeprefix("const ").removesuffix("*")


@dataclass(frozen=True)
class KernelSpec:
    """A kernel specialised to its parameters. Hashable, ordered and deterministic.

    `params` may be given as a mapping or as (key, value) pairs; it is stored as a tuple sorted by key.
    """

    kind: str
    name: str
    params: tuple[tuple[str, ParamValue], ...]

    def __post_init__(self) -> None:
        params = self.params
        if isinstance(params, Mapping):
            params = tuple(params.items())
        object.__setattr__(self, "params", tuple(sorted((str(k), v) for k, v in params)))
        if self.kind not in KINDS:
            raise ValueError(f"unknown kernel kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not is_safe_symbol(self.name):
            raise ValueError(f"kernel name {self.name!r} is not sanitised; use naming.c_identifier")
        _validate(self.kind, dict(self.params), Loc(f"kernel {self.name}"))

    def p(self, key: str) -> ParamValue:
        for k, v in self.params:
            if k == key:
                return v
        raise KeyError(f"kernel {self.name} ({self.kind}) has no parameter {key!r}")

    @property
    def args(self) -> tuple[Arg, ...]:
        return kernel_args(self)


def _validate(kind: str, params: dict[str, ParamValue], loc: Loc) -> None:
    expected = _PARAM_TYPES[kind]
    if set(params) != set(expected):
        raise HetcError(f"{kind} kernel needs parameters {sorted(expected)}, got {sorted(params)}", loc)
    for key, typ in expected.items():
        value = params[key]
        ok = isinstance(value, typ) and not isinstance(value, bool)
        if typ is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise HetcError(f"{kind}.{key}: expected {typ.__name__}, got {value!r}", loc)
        if typ is int and value <= 0:
            raise HetcError(f"{kind}.{key}: expected a positive integer, got {value}", loc)
    if kind == SAMPLE and not params["top_k"] <= min(params["vocab"], MAX_TOP_K):
        raise HetcError(f"top_k must be in 1..min(vocab, {MAX_TOP_K}), got {params['top_k']}", loc)
    if kind == VECTOR_SEARCH:
        if params["metric"] not in SEARCH_METRICS:
            raise HetcError(f"metric: expected one of {SEARCH_METRICS}, got {params['metric']!r}", loc)
        if params["top_k"] > MAX_TOP_K:
            raise HetcError(f"top_k must be at most {MAX_TOP_K}, got {params['top_k']}", loc)
    if kind in (KV_QUANTIZE, KV_DEQUANTIZE) and params["qdtype"] not in KV_QDTYPES:
        raise HetcError(f"qdtype: expected one of {KV_QDTYPES}, got {params['qdtype']!r}", loc)
    if kind == RMSNORM and not 0 < params["eps"] < 1:
        raise HetcError(f"rmsnorm eps must be in (0, 1), got {params['eps']}", loc)
    if kind == ELEMENTWISE and params["op"] not in ELEMENTWISE_OPS:
        raise HetcError(f"elementwise op: expected one of {ELEMENTWISE_OPS}, got {params['op']!r}", loc)


def kernel_args(spec: KernelSpec) -> tuple[Arg, ...]:
    """The ABI of a kernel: argument order, types and meaning. All arrays are dense and row-major."""
    k = spec.kind
    if k == SAMPLE:
        return (
            Arg("logits", "const f32*", "[rows, vocab] raw logits"),
            Arg("rows", "i64", "number of rows (sequences)"),
            Arg("temperature", "f32", "> 0; logits are multiplied by 1/temperature"),
            Arg("top_p", "f32", "nucleus mass in (0, 1]; 1 disables nucleus truncation"),
            Arg("uniform", "const f32*", "[rows] uniform random numbers in [0, 1), one per row"),
            Arg("out_token", "i32*", "[rows] sampled token id"),
            Arg("out_prob", "f32*", "[rows] full-softmax probability of the sampled token"),
        )
    if k == VECTOR_SEARCH:
        return (
            Arg("matrix", "const f32*", "[n_rows, dim] embedding matrix"),
            Arg("n_rows", "i64", "rows in the matrix"),
            Arg("queries", "const f32*", "[n_queries, dim] query vectors"),
            Arg("n_queries", "i64", "number of queries"),
            Arg("out_index", "i32*", "[n_queries, top_k] best rows, best first; -1 when n_rows < top_k"),
            Arg("out_score", "f32*", "[n_queries, top_k] their scores; -inf when missing"),
        )
    if k == EMBED_POOL:
        return (
            Arg("hidden", "const f32*", "[batch, seq, dim] token embeddings"),
            Arg("mask", "const i32*", "[batch, seq] attention mask, non-zero = token counts"),
            Arg("batch", "i64", "sequences"),
            Arg("seq", "i64", "tokens per sequence"),
            Arg("out", "f32*", "[batch, dim] L2-normalised mean embedding"),
        )
    if k == KV_QUANTIZE:
        return (
            Arg("kv", "const u16*", "[n_layers, 2, n_tokens, n_kv_heads, head_dim] fp16 K and V"),
            Arg("n_tokens", "i64", "tokens in the cache"),
            Arg("codes", "u8*", "same shape: int8 or fp8 e4m3 codes"),
            Arg("scales", "f32*", "[n_layers, 2, ceil(n_tokens/block_tokens), n_kv_heads] per-block scales"),
        )
    if k == KV_DEQUANTIZE:
        return (
            Arg("codes", "const u8*", "[n_layers, 2, n_tokens, n_kv_heads, head_dim] codes"),
            Arg("scales", "const f32*", "[n_layers, 2, ceil(n_tokens/block_tokens), n_kv_heads] scales"),
            Arg("n_tokens", "i64", "tokens in the cache"),
            Arg("kv", "u16*", "same shape: fp16 K and V"),
        )
    if k == RMSNORM:
        return (
            Arg("x", "const f32*", "[rows, dim] input"),
            Arg("weight", "const f32*", "[dim] gain"),
            Arg("rows", "i64", "rows"),
            Arg("out", "f32*", "[rows, dim] x * rsqrt(mean(x^2) + eps) * weight"),
        )
    if k == ELEMENTWISE:
        if spec.p("op") == "gelu":
            return (Arg("a", "const f32*", "[n] input"), Arg("out", "f32*", "[n] gelu(a)"),
                    Arg("n", "i64", "elements"))
        return (Arg("a", "const f32*", "[n] lhs"), Arg("b", "const f32*", "[n] rhs"),
                Arg("out", "f32*", f"[n] a {spec.p('op')} b"), Arg("n", "i64", "elements"))
    raise ValueError(k)


def kv_blocks(n_tokens: int, block_tokens: int) -> int:
    return -(-n_tokens // block_tokens)


# ----------------------------------------------------------------------------------------------------------
# granular op -> kernels: one builder per op kind; each task op names its builder (hetc/dialects/interfaces.py)


def _kernel(kind: str, op_name: str, suffix: str, **params: ParamValue) -> KernelSpec:
    return KernelSpec(kind, f"hetc_{c_identifier(op_name)}_{suffix}", tuple(params.items()))


def _require_arch(op_kind: str, op_name: str, arch: object) -> None:
    if arch is None:
        raise HetcError(f"op {op_name!r} ({op_kind}) needs a model architecture to specialise its kernels",
                        Loc(f"op {c_identifier(op_name)}"))


def _attr_int(attrs: dict, key: str, default: int | None, op_name: str) -> int:
    value = attrs.get(key, default)
    if value is None:
        raise HetcError(f"attribute {key!r} is required (a positive integer)", Loc(f"op {c_identifier(op_name)}"))
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise HetcError(f"attribute {key!r}: expected a positive integer, got {value!r}",
                        Loc(f"op {c_identifier(op_name)}"))
    return value


def _elementwise(op_name: str) -> list[KernelSpec]:
    return [_kernel(ELEMENTWISE, op_name, op, op=op) for op in ELEMENTWISE_OPS]


def decode_kernels(op_name: str, arch, attrs: dict | None = None) -> list[KernelSpec]:
    """Sampling and RMSNorm, specialised to the model (`arch`: hetc.model.models.ModelArch); attrs: top_k, rms_eps."""
    attrs = dict(attrs or {})
    _require_arch("decode", op_name, arch)
    top_k = _attr_int(attrs, "top_k", min(DEFAULT_SAMPLE_TOP_K, arch.vocab_size), op_name)
    return [
        _kernel(SAMPLE, op_name, "sample", vocab=arch.vocab_size, top_k=top_k),
        _kernel(RMSNORM, op_name, "rmsnorm", dim=arch.d_model, eps=float(attrs.get("rms_eps", DEFAULT_RMSNORM_EPS))),
    ]


def prefill_kernels(op_name: str, arch, attrs: dict | None = None) -> list[KernelSpec]:
    """RMSNorm and the element-wise ops; attrs: rms_eps."""
    attrs = dict(attrs or {})
    _require_arch("prefill", op_name, arch)
    return [_kernel(RMSNORM, op_name, "rmsnorm", dim=arch.d_model,
                    eps=float(attrs.get("rms_eps", DEFAULT_RMSNORM_EPS)))] + _elementwise(op_name)


def kv_transfer_kernels(op_name: str, arch, attrs: dict | None = None) -> list[KernelSpec]:
    """KV-cache pack and unpack; attrs: kv_dtype ("fp8_e4m3" | "int8"), block_tokens."""
    attrs = dict(attrs or {})
    _require_arch("kv_transfer", op_name, arch)
    layout = dict(n_layers=arch.n_layers, n_kv_heads=arch.n_kv_heads, head_dim=arch.head_dim,
                  block_tokens=_attr_int(attrs, "block_tokens", DEFAULT_KV_BLOCK_TOKENS, op_name),
                  qdtype=attrs.get("kv_dtype", DEFAULT_KV_QDTYPE))
    return [_kernel(KV_QUANTIZE, op_name, "kv_pack", **layout), _kernel(KV_DEQUANTIZE, op_name, "kv_unpack", **layout)]


def vector_search_kernels(op_name: str, arch=None, attrs: dict | None = None) -> list[KernelSpec]:
    """Similarity top-k; attrs: dim (required), top_k, metric ("cosine" | "dot")."""
    attrs = dict(attrs or {})
    return [_kernel(VECTOR_SEARCH, op_name, "search", dim=_attr_int(attrs, "dim", None, op_name),
                    top_k=_attr_int(attrs, "top_k", DEFAULT_SEARCH_TOP_K, op_name),
                    metric=str(attrs.get("metric", "cosine")))]


def embed_kernels(op_name: str, arch, attrs: dict | None = None) -> list[KernelSpec]:
    """Mean pooling with L2 normalisation over the model's hidden size."""
    _require_arch("embed", op_name, arch)
    return [_kernel(EMBED_POOL, op_name, "pool", dim=arch.d_model)]


def compute_kernels(op_name: str, arch=None, attrs: dict | None = None) -> list[KernelSpec]:
    """The element-wise ops of CPU work."""
    return _elementwise(op_name)


def unique_kernels(kernels: list[KernelSpec]) -> list[KernelSpec]:
    """Sorted by name, duplicates dropped; two different kernels under one name are an internal error."""
    by_name: dict[str, KernelSpec] = {}
    for k in kernels:
        seen = by_name.setdefault(k.name, k)
        if seen != k:
            raise ValueError(f"two different kernels are both named {k.name}: {seen} and {k}")
    return [by_name[n] for n in sorted(by_name)]
