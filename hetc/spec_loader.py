"""The spec loader: a hetc agent spec (YAML, docs/spec.md) -> hetc.spec.Spec, or every error at once.

The loader validates everything a user can get wrong (unknown keys, types, units, ranges, model and device
names, graph shape) and collects all diagnostics before raising one HetcError, so a user fixes a spec in
one round. Defaults are applied here, so later stages read complete Node.attrs.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Any

from hetc.errors import Diagnostic, HetcError, Loc
from hetc.models import ALIASES, KIND_FOR_NODE, MODEL_KINDS, PRECISION_BYTES, PRESETS, ModelArch, resolve_preset
from hetc.spec import (
    NODE_KINDS,
    SLO,
    SPEC_VERSION,
    Edge,
    Graph,
    Hardware,
    Inventory,
    ModelRef,
    Node,
    Spec,
    Traffic,
)
from hetc.userfiles import UnreadableFile, read_input, read_regular_file
from hetc.yaml_source import MAX_FILE_BYTES, YamlList, YamlMap, YamlNode, YamlScalar, read_yaml_mapping

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
EMBED_MODEL_KINDS = KIND_FOR_NODE["embedding"]

# Bytes an input payload occupies when the spec does not say (input.bytes).
BYTES_PER_TEXT_TOKEN = 4  # ~4 characters of English per BPE token (OpenAI tokenizer rule of thumb), UTF-8
BYTES_PER_TOKEN_ID = 4  # int32 token ids
AUDIO_BYTES_PER_S = 16_000 * 2  # 16 kHz mono 16-bit PCM: Whisper's input format
EMBEDDING_ELEMENT_BYTES = 4  # fp32 vectors

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

_REQUIRED = object()  # FieldRule.default: the key must be given
_ABSENT = object()  # FieldRule.default: optional with no value (the kind's check fills it in)


@dataclass(frozen=True)
class FieldRule:
    """One key of a mapping: its type, unit, default and range (docs/spec.md lists the same)."""

    name: str
    type: str  # "int", "number", "string", "choice", "bool", "model"
    unit: str = ""  # shown in errors: "expected a positive integer (tokens)"
    default: Any = _ABSENT
    choices: tuple[str, ...] = ()
    allow_zero: bool = False
    limit: Limit | None = None
    model_kinds: tuple[str, ...] = MODEL_KINDS  # type "model": the model kinds the field accepts


def _req(name: str, type_: str, **kw: Any) -> FieldRule:
    return FieldRule(name, type_, default=_REQUIRED, **kw)


def _model(name: str, kinds: tuple[str, ...], required: bool = True) -> FieldRule:
    return FieldRule(name, "model", default=_REQUIRED if required else None, model_kinds=kinds)


_TOKENS = dict(unit="tokens", limit=MAX_TOKENS)
_MS = dict(unit="milliseconds", limit=MAX_MS)
_KB = dict(unit="kilobytes", limit=MAX_KB)

# Per node kind: its fields besides `kind` and `description` (common to all kinds), in attrs order.
NODE_FIELDS: dict[str, tuple[FieldRule, ...]] = {
    "input": (
        FieldRule("produces", "choice", default="text", choices=INPUT_PAYLOADS),
        FieldRule("tokens", "int", default=64, **_TOKENS),
        FieldRule("audio_seconds", "number", unit="seconds", default=10.0, limit=MAX_AUDIO_S),
        FieldRule("dim", "int", unit="vector elements", default=1024, limit=MAX_DIM),
        FieldRule("bytes", "int", unit="bytes", limit=MAX_BYTES),
    ),
    "output": (),
    "llm": (
        _model("model", KIND_FOR_NODE["llm"]),
        FieldRule("input_tokens", "int", default=512, **_TOKENS),
        FieldRule("output_tokens", "int", default=256, **_TOKENS),
    ),
    "speech_to_text": (
        _model("model", KIND_FOR_NODE["speech_to_text"]),
        FieldRule("audio_seconds", "number", unit="seconds", limit=MAX_AUDIO_S),
        FieldRule("output_tokens", "int", default=64, **_TOKENS),
    ),
    "text_to_speech": (
        _model("model", KIND_FOR_NODE["text_to_speech"]),
        FieldRule("input_tokens", "int", default=128, **_TOKENS),
        FieldRule("audio_seconds", "number", unit="seconds", default=10.0, limit=MAX_AUDIO_S),
    ),
    "embedding": (
        _model("model", KIND_FOR_NODE["embedding"]),
        FieldRule("tokens", "int", default=256, **_TOKENS),
    ),
    "model": (
        _model("model", KIND_FOR_NODE["model"]),
        FieldRule("input_tokens", "int", default=512, **_TOKENS),
        FieldRule("output_tokens", "int", default=0, allow_zero=True, **_TOKENS),
    ),
    "kv_cache": (
        _model("model", KV_CACHE_MODEL_KINDS),
        FieldRule("tokens", "int", default=2048, **_TOKENS),
        FieldRule("placement", "choice", default="local", choices=KV_PLACEMENTS),
    ),
    "tool": (
        FieldRule("tool", "string"),  # default: the node id
        _req("latency_ms", "number", **_MS),
        FieldRule("latency_p99_ms", "number", **_MS),  # default: latency_ms
        FieldRule("compute_ms", "number", default=0.0, allow_zero=True, **_MS),
        FieldRule("request_kb", "number", default=1.0, allow_zero=True, **_KB),
        FieldRule("response_kb", "number", default=4.0, allow_zero=True, **_KB),
    ),
    "memory_lookup": (
        _req("n_vectors", "int", unit="vectors", limit=MAX_VECTORS),
        FieldRule("dim", "int", unit="vector elements", limit=MAX_DIM),  # default: embed_model's d_model
        FieldRule("precision", "choice", default="fp32", choices=PRECISIONS),
        FieldRule("index", "choice", default="flat", choices=VECTOR_INDEXES),
        FieldRule("top_k", "int", unit="results", default=10, limit=MAX_TOP_K),
        FieldRule("query_tokens", "int", default=64, **_TOKENS),
        _model("embed_model", EMBED_MODEL_KINDS, required=False),
        _model("rerank_model", MODEL_KINDS, required=False),
    ),
    "memory_store": (
        FieldRule("n_vectors", "int", unit="vectors", default=1, limit=MAX_VECTORS),
        FieldRule("dim", "int", unit="vector elements", limit=MAX_DIM),  # default: embed_model's d_model
        FieldRule("precision", "choice", default="fp32", choices=PRECISIONS),
        FieldRule("tokens", "int", default=64, **_TOKENS),
        _model("embed_model", EMBED_MODEL_KINDS, required=False),
        FieldRule("latency_ms", "number", default=2.0, allow_zero=True, **_MS),
    ),
    "compute": (
        _req("cpu_ms", "number", **_MS),
        FieldRule("op", "choice", default="none", choices=COMPUTE_OPS),
    ),
    "guardrail": (
        _model("model", KIND_FOR_NODE["llm"]),
        FieldRule("input_tokens", "int", default=512, **_TOKENS),
        FieldRule("output_tokens", "int", default=8, **_TOKENS),
    ),
    "agent": (
        FieldRule("graph", "graph"),
        FieldRule("file", "string"),
        FieldRule("plan_as_unit", "bool", default=False),
    ),
}

# ModelArch fields a spec may set under `arch:` or `overrides:`
ARCH_RULES: dict[str, FieldRule] = {r.name: r for r in (
    FieldRule("name", "string"),
    FieldRule("kind", "choice", choices=MODEL_KINDS),
    FieldRule("n_layers", "int", unit="layers", limit=MAX_LAYERS),
    FieldRule("d_model", "int", unit="hidden size", limit=MAX_WIDTH),
    FieldRule("n_heads", "int", unit="attention heads", limit=MAX_WIDTH),
    FieldRule("n_kv_heads", "int", unit="key/value heads", limit=MAX_WIDTH),
    FieldRule("d_ff", "int", unit="MLP width", limit=MAX_WIDTH),
    FieldRule("vocab_size", "int", unit="tokens", limit=MAX_VOCAB),
    FieldRule("max_context", "int", unit="tokens", limit=MAX_TOKENS),
    FieldRule("n_experts", "int", unit="experts", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("experts_per_token", "int", unit="experts", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("encoder_layers", "int", unit="layers", allow_zero=True, limit=MAX_LAYERS),
    FieldRule("encoder_frames", "int", unit="positions", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("tied_embeddings", "bool"),
    FieldRule("params_override", "int", unit="parameters", allow_zero=True, limit=MAX_PARAMS),
    FieldRule("source", "string"),
    FieldRule("head_dim_override", "int", unit="head size", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("moe_d_ff", "int", unit="MLP width", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("n_shared_experts", "int", unit="experts", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("first_dense_layers", "int", unit="layers", allow_zero=True, limit=MAX_LAYERS),
    FieldRule("kv_lora_rank", "int", unit="latent size", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("qk_rope_head_dim", "int", unit="head size", allow_zero=True, limit=MAX_WIDTH),
    FieldRule("sliding_window", "int", unit="tokens", allow_zero=True, limit=MAX_TOKENS),
    FieldRule("sliding_layers", "int", unit="layers", allow_zero=True, limit=MAX_LAYERS),
    FieldRule("gated_mlp", "bool"),
    FieldRule("hf_repo", "string"),
    FieldRule("engine", "choice", choices=("", "vllm", "sglang", "trtllm", "vllm-gaudi", "lmdeploy", "gpt-fast")),
)}
assert set(ARCH_RULES) == {f.name for f in dc_fields(ModelArch)}
ARCH_REQUIRED = ("kind", "n_layers", "d_model", "n_heads", "d_ff", "vocab_size")

TOP_KEYS = ("hetc", "name", "description", "slo", "traffic", "models", "nodes", "edges", "hardware")
INCLUDED_FILE_KEYS = ("hetc", "name", "description", "models", "nodes", "edges")

# ---- unit handling for "did you mean" ----------------------------------------------------------------

# key suffix -> (unit family, factor to the family's base unit)
_KEY_UNITS = {
    "_ms": ("time", 1e-3), "_s": ("time", 1.0), "_sec": ("time", 1.0), "_secs": ("time", 1.0),
    "_seconds": ("time", 1.0), "_us": ("time", 1e-6), "_min": ("time", 60.0), "_minutes": ("time", 60.0),
    "_kb": ("size", 1e3), "_mb": ("size", 1e6), "_gb": ("size", 1e9), "_bytes": ("size", 1.0),
    "_b": ("size", 1.0),
}
_UNIT_WORDS = {"milliseconds": ("time", 1e-3), "seconds": ("time", 1.0), "kilobytes": ("size", 1e3)}
_VALUE_UNITS = {
    "ms": ("time", 1e-3), "s": ("time", 1.0), "sec": ("time", 1.0), "secs": ("time", 1.0),
    "seconds": ("time", 1.0), "us": ("time", 1e-6), "min": ("time", 60.0),
    "kb": ("size", 1e3), "mb": ("size", 1e6), "gb": ("size", 1e9), "b": ("size", 1.0), "bytes": ("size", 1.0),
}
_NUMBER_WITH_UNIT = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)\s*$")
# YAML 1.2 numbers PyYAML (YAML 1.1) reads as strings, e.g. 1e6
_YAML12_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _split_unit_key(key: str) -> tuple[str, tuple[str, float] | None]:
    for suffix in sorted(_KEY_UNITS, key=len, reverse=True):
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], _KEY_UNITS[suffix]
    return key, None


def _close(word: str, options: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if not matches:
        lowered = {o.lower(): o for o in options}
        matches = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return matches[0] if matches else None


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    match = _close(word, options)
    return f"; did you mean '{match}'?" if match else ""


def _a(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _edge_name(src: str, dst: str) -> str:
    return f"{src} -> {dst}"


@dataclass
class _Endpoint:
    name: str
    loc: Loc


class _Loader:
    def __init__(self, device_aliases: Mapping[str, str] | None):
        self.diags: list[Diagnostic] = []
        self.device_aliases = device_aliases
        self.models: dict[str, ModelRef] = {}  # every model of the spec and its included files
        self.invalid_models: set[str] = set()  # declared but invalid (already reported): no cascades
        self.include_stack: list[str] = []  # real paths of the files being loaded (cycle detection)
        self.display_stack: list[str] = []  # the same files as diagnostics show them
        self.included_sha256: dict[str, str] = {}

    def error(self, loc: Loc, message: str) -> None:
        self.diags.append(Diagnostic(loc, message))

    # ---- mappings and keys ----

    def keys(self, ymap: YamlMap, context: str, allowed: Sequence[str], required: Sequence[str] = (),
             rules: Mapping[str, FieldRule] | None = None) -> dict[str, tuple[YamlScalar, YamlNode]]:
        """The allowed entries of a mapping; reports duplicates, unknown keys and missing required keys."""
        for key, loc, first in ymap.duplicates:
            self.error(loc, f"duplicate key '{key}' {context} (first at line {first.line})")
        found: dict[str, tuple[YamlScalar, YamlNode]] = {}
        suggested: set[str] = set()
        for key, (key_node, value) in ymap.entries.items():
            if key in allowed:
                found[key] = (key_node, value)
            else:
                message, suggestion = self._unknown_key(key, value, context, allowed, rules)
                self.error(key_node.loc, message)
                suggested.add(suggestion)
        for key in required:
            if key not in found and key not in suggested:  # a misspelt key already says what to write
                self.error(ymap.loc, f"missing required key '{key}' {context}")
        return found

    def _unknown_key(self, key: str, value: YamlNode, context: str, allowed: Sequence[str],
                     rules: Mapping[str, FieldRule] | None) -> tuple[str, str]:
        """The message and the suggested key ("" when none)."""
        head = f"unknown key '{key}' {context}"
        stem, unit = _split_unit_key(key)
        for option in allowed:  # a known field written with another unit (latency_s, latency)
            option_stem, option_unit = _split_unit_key(option)
            if option_stem != stem or option == key:
                continue
            if option_unit is None and rules is not None and option in rules:
                option_unit = _UNIT_WORDS.get(rules[option].unit)
            number = value.value if isinstance(value, YamlScalar) else None
            if (unit and option_unit and unit[0] == option_unit[0] and isinstance(number, (int, float))
                    and not isinstance(number, bool) and math.isfinite(number)):
                converted = number * unit[1] / option_unit[1]
                return (f"{head}; did you mean '{option}: {_fmt(converted)}'? (the unit is part of the name)",
                        option)
            return f"{head}; did you mean '{option}'? (the unit is part of the name)", option
        match = _close(key, allowed)
        if match:
            return f"{head}; did you mean '{match}'?", match
        return f"{head}; expected one of: {', '.join(sorted(allowed))}", ""

    def mapping(self, node: YamlNode | None, what: str) -> YamlMap | None:
        if isinstance(node, YamlMap):
            return node
        if node is not None:
            self.error(node.loc, f"{what} must be a mapping (key: value), got {node.describe()}")
        return None

    # ---- scalar values ----

    def number(self, node: YamlNode, rule: FieldRule, integer: bool | None = None) -> float | int | None:
        integer = rule.type == "int" if integer is None else integer
        sign = "a non-negative" if rule.allow_zero else "a positive"
        expected = f"{sign} {'integer' if integer else 'number'}" + (f" ({rule.unit})" if rule.unit else "")
        if not isinstance(node, YamlScalar):
            self.error(node.loc, f"expected {expected}, got {node.describe()}")
            return None
        value = node.value
        if isinstance(value, str) and not node.quoted and _YAML12_NUMBER.match(value):
            value = float(value)  # 1e6: a number in YAML 1.2, a string to PyYAML
        if isinstance(value, bool) or value is None or isinstance(value, str):
            self.error(node.loc, f"expected {expected}, got {node.describe()}{self._unit_hint(node, rule)}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.error(node.loc, f"expected {expected}, got {node.text} (not a finite number)")
            return None
        if integer and isinstance(value, float):
            if not value.is_integer():
                self.error(node.loc, f"expected {expected}, got {node.text} (not a whole number)")
                return None
            value = int(value)
        if value < 0 or (value == 0 and not rule.allow_zero):
            self.error(node.loc, f"expected {expected}, got {node.text}")
            return None
        if rule.limit is not None and value > rule.limit.maximum:
            self.error(node.loc, f"{node.text} is too large for '{rule.name}': at most "
                                 f"{_fmt(rule.limit.maximum)} ({rule.limit.reason})")
            return None
        return int(value) if integer else float(value)

    @staticmethod
    def _unit_hint(node: YamlScalar, rule: FieldRule) -> str:
        match = _NUMBER_WITH_UNIT.match(node.text) if isinstance(node.value, str) else None
        target = _UNIT_WORDS.get(rule.unit)
        if not match or not target:
            return ""
        unit = _VALUE_UNITS.get(match.group(2).lower())
        if unit is None or unit[0] != target[0]:
            return ""
        converted = float(match.group(1)) * unit[1] / target[1]
        return f"; the unit ({rule.unit}) is part of the key: write {_fmt(converted)}"

    def string(self, node: YamlNode, what: str) -> str | None:
        if isinstance(node, YamlScalar) and node.value is not None and node.text.strip():
            return node.text  # `name: 2024-01-01` or `name: yes` mean the text as written
        shown = node.describe() if not isinstance(node, YamlScalar) or node.value is None else "an empty string"
        self.error(node.loc, f"expected {what} (a non-empty string), got {shown}")
        return None

    def text(self, node: YamlNode, what: str) -> str:
        """Free text that may be empty (descriptions)."""
        if isinstance(node, YamlScalar) and node.value is not None:
            return node.text
        self.error(node.loc, f"expected {what} (a string, may be empty), got {node.describe()}")
        return ""

    def choice(self, node: YamlNode, rule: FieldRule) -> str | None:
        if isinstance(node, YamlScalar) and isinstance(node.value, str) and node.value in rule.choices:
            return node.value
        options = "|".join(rule.choices)
        got = node.describe()
        hint = _did_you_mean(node.text, rule.choices) if isinstance(node, YamlScalar) else ""
        self.error(node.loc, f"expected one of {options} for '{rule.name}', got {got}{hint}")
        return None

    def boolean(self, node: YamlNode, rule: FieldRule) -> bool | None:
        if isinstance(node, YamlScalar) and isinstance(node.value, bool):
            return node.value
        self.error(node.loc, f"expected true or false for '{rule.name}', got {node.describe()}")
        return None

    def value(self, node: YamlNode, rule: FieldRule, visible_models: Mapping[str, ModelRef]) -> Any:
        """Check one field; None when it is invalid (an error has been recorded)."""
        if rule.type in ("int", "number"):
            return self.number(node, rule)
        if rule.type == "string":
            return self.string(node, f"'{rule.name}'")
        if rule.type == "choice":
            return self.choice(node, rule)
        if rule.type == "bool":
            return self.boolean(node, rule)
        if rule.type == "model":
            return self.model_ref(node, rule, visible_models)
        return node  # "graph": checked by the agent node

    def model_ref(self, node: YamlNode, rule: FieldRule, visible: Mapping[str, ModelRef]) -> str | None:
        name = self.string(node, f"a model id for '{rule.name}'")
        if name is None:
            return None
        model = visible.get(name)
        if model is None and name in self.invalid_models:
            return None  # its definition's error is reported already
        if model is None:
            where = f"; models defined here: {', '.join(sorted(visible))}" if visible else "; no models are defined"
            hint = _did_you_mean(name, sorted(visible))
            self.error(node.loc, f"unknown model '{name}' in '{rule.name}'{hint or where}")
            return None
        if model.arch.kind not in rule.model_kinds:
            self.error(node.loc, f"model '{name}' ({model.arch.name}) is {_a(model.arch.kind)} model; "
                                 f"'{rule.name}' here needs {_a(' or '.join(rule.model_kinds))} model")
            return None
        return name

    # ---- top level ----

    def load_file(self, display_path: str, data: bytes, included_from: Loc | None,
                  parent_models: Mapping[str, ModelRef]) -> tuple[YamlMap, dict, dict[str, ModelRef]] | None:
        """Parse a spec or included agent file; returns (root, its keys, the models its nodes may use)."""
        what = "an agent file" if included_from else "a hetc spec"
        try:
            root = read_yaml_mapping(data, display_path, what)
        except HetcError as exc:
            self.diags.extend(exc.diagnostics)
            return None
        allowed = INCLUDED_FILE_KEYS if included_from else TOP_KEYS
        context = "in an included agent file" if included_from else "at the top level"
        top = self.keys(root, context, TOP_KEYS, required=("hetc", "name", "nodes", "edges"))
        if included_from:
            for key in TOP_KEYS:
                if key in top and key not in allowed:
                    self.error(top[key][0].loc, f"'{key}' is not allowed in an included agent file: slo, traffic "
                                                "and hardware belong to the top-level spec")
        if "hetc" in top:
            version_node = top["hetc"][1]
            if not (isinstance(version_node, YamlScalar) and type(version_node.value) is int):
                self.error(version_node.loc, f"expected the spec format version (an integer: write 'hetc: "
                                             f"{SPEC_VERSION}'), got {version_node.describe()}")
            elif version_node.value != SPEC_VERSION:
                self.error(version_node.loc, f"unsupported spec format version {version_node.value}; this hetc "
                                             f"reads version {SPEC_VERSION}")
        visible = dict(parent_models)
        if "models" in top:
            visible.update(self.models_section(top["models"][1]))
        return root, top, visible

    def models_section(self, node: YamlNode) -> dict[str, ModelRef]:
        ymap = self.mapping(node, "models")
        if ymap is None:
            return {}
        found = self.keys(ymap, "in models", list(ymap.entries))
        own: dict[str, ModelRef] = {}
        for model_id, (key_node, value) in found.items():
            ref = self.model(model_id, key_node, value)
            if ref is None:
                self.invalid_models.add(model_id)
                continue
            own[model_id] = ref
            previous = self.models.get(model_id)
            if previous is None:
                self.models[model_id] = ref
            elif (previous.arch, previous.precision, previous.kv_precision) != (
                    ref.arch, ref.precision, ref.kv_precision):
                self.error(key_node.loc, f"model id '{model_id}' is already defined differently at "
                                         f"{previous.loc}; give this model another id")
        return own

    def model(self, model_id: str, key_node: YamlScalar, node: YamlNode) -> ModelRef | None:
        if not model_id.strip():
            self.error(key_node.loc, "a model id must not be empty")
            return None
        context = f"in model '{model_id}'"
        if isinstance(node, YamlScalar) and isinstance(node.value, str):  # shorthand: `chat: llama-3-8b`
            arch = self.preset(node)
            return ModelRef(model_id, arch, "bf16", "bf16", key_node.loc) if arch else None
        ymap = self.mapping(node, f"model '{model_id}'")
        if ymap is None:
            return None
        found = self.keys(ymap, context, ("preset", "arch", "overrides", "precision", "kv_precision", "engine"))
        ok = True
        if ("preset" in found) == ("arch" in found):
            self.error(ymap.loc, f"model '{model_id}' needs exactly one of 'preset' (a known model) or 'arch' "
                                 "(an explicit architecture)")
            ok = False
        if "overrides" in found and "preset" not in found:
            self.error(found["overrides"][0].loc, "'overrides' changes a preset; with 'arch' write the values there")
            ok = False
        precision_rule = FieldRule("precision", "choice", choices=PRECISIONS)
        precision = "bf16"
        if "precision" in found:
            precision = self.choice(found["precision"][1], precision_rule) or ""
        kv_precision = precision
        if "kv_precision" in found:
            kv_precision = self.choice(found["kv_precision"][1], FieldRule("kv_precision", "choice",
                                                                           choices=PRECISIONS)) or ""
        arch: ModelArch | None = None
        if ok and "preset" in found:
            arch = self.preset(found["preset"][1])
            if arch is not None and "overrides" in found:
                arch = self.arch_fields(found["overrides"][1], f"in model '{model_id}' overrides", arch, model_id)
        elif ok:
            arch = self.arch_fields(found["arch"][1], f"in model '{model_id}' arch", None, model_id)
        if arch is not None and "engine" in found:  # the serving engine is costed with the model
            engine = self.choice(found["engine"][1], ARCH_RULES["engine"])
            arch = None if engine is None else arch.with_overrides(engine=engine)
        if arch is None or not precision or not kv_precision:
            return None
        return ModelRef(model_id, arch, precision, kv_precision, key_node.loc)

    def preset(self, node: YamlNode) -> ModelArch | None:
        name = self.string(node, "a model preset name")
        if name is None:
            return None
        if name.strip().endswith(".json") and self.display_stack:  # a config.json: relative to this file
            name = os.path.join(os.path.dirname(self.display_stack[-1]), name.strip())
        arch = resolve_preset(name)
        if arch is None:
            known = sorted(set(PRESETS) | set(ALIASES))
            hint = _did_you_mean(name.strip().lower(), known) or f"; known presets: {', '.join(sorted(PRESETS))}"
            self.error(node.loc, f"unknown model preset '{name}'{hint}")
        return arch

    def arch_fields(self, node: YamlNode, context: str, base: ModelArch | None, model_id: str) -> ModelArch | None:
        ymap = self.mapping(node, context.removeprefix("in "))
        if ymap is None:
            return None
        required = ARCH_REQUIRED if base is None else ()
        found = self.keys(ymap, context, tuple(ARCH_RULES), required, ARCH_RULES)
        values: dict[str, Any] = {}
        ok = all(key in found for key in required)
        for key, (_, value_node) in found.items():
            value = self.value(value_node, ARCH_RULES[key], {})
            if value is None:
                ok = False
            else:
                values[key] = value
        if not ok:
            return None
        if base is None:
            values.setdefault("name", model_id)
            values.setdefault("n_kv_heads", values["n_heads"])
            arch = ModelArch(**values)
        else:
            arch = base.with_overrides(**values)

        def at(key: str) -> Loc:
            return found[key][1].loc if key in found else ymap.loc

        problems = arch_problems(arch)
        for key, message in problems:  # at the field to blame, else the one it is measured against
            self.error(at(key if key in found else {"d_model": "n_heads", "n_kv_heads": "n_heads"}.get(key, key)),
                       message)
        consistent = not problems
        return arch if consistent else None

    # ---- nodes ----

    def graph(self, nodes_node: YamlNode | None, edges_node: YamlNode | None, where: Loc, context: str,
              visible: Mapping[str, ModelRef], file: str) -> Graph:
        """Nodes and edges of one graph level (the spec, an inline agent graph or an included file)."""
        nodes: dict[str, Node] = {}
        kinds_ok = True
        nodes_map = self.mapping(nodes_node, "nodes") if nodes_node is not None else None
        if nodes_map is not None:
            for key, loc, first in nodes_map.duplicates:
                self.error(loc, f"duplicate node id '{key}'{context} (first defined at line {first.line}; "
                                "YAML keeps only one of them)")
            for node_id, (key_node, value) in nodes_map.entries.items():
                node, ok = self.node(node_id, key_node, value, visible, file)
                kinds_ok &= ok
                if node is not None:
                    nodes[node_id] = node
        if nodes_map is None:  # edges would only repeat that the nodes are missing
            return Graph(nodes, [])
        edges, endpoints_ok = self.edges(edges_node, nodes)
        graph = Graph(nodes, edges)
        self.check_graph(graph, where, context, shape_checks=kinds_ok and endpoints_ok and nodes_map is not None)
        self.fill_upstream_defaults(graph)
        return graph

    def node(self, node_id: str, key_node: YamlScalar, value: YamlNode, visible: Mapping[str, ModelRef],
             file: str) -> tuple[Node | None, bool]:
        """(the node, whether its kind is known). A node with a bad id is still registered for edges."""
        loc = key_node.loc
        if not node_id:
            self.error(loc, "a node id must not be empty")
        elif node_id != node_id.strip():
            self.error(loc, f"node id {node_id!r} starts or ends with whitespace")
        elif "->" in node_id:
            self.error(loc, f"node id '{node_id}' contains '->', which separates nodes in edges")
        context = f"in node '{node_id}'"
        ymap = self.mapping(value, f"node '{node_id}'")
        if ymap is None:
            return Node(node_id, "", loc), False
        kind_entry = ymap.entries.get("kind")
        kind = ""
        if kind_entry is None:
            self.error(ymap.loc, f"node '{node_id}' is missing required key 'kind' (one of {'|'.join(NODE_KINDS)})")
        else:
            kind = self.choice(kind_entry[1], FieldRule("kind", "choice", choices=NODE_KINDS)) or ""
        if not kind:
            for key, loc_dup, first in ymap.duplicates:
                self.error(loc_dup, f"duplicate key '{key}' {context} (first at line {first.line})")
            return Node(node_id, "", loc), False
        rules = {rule.name: rule for rule in NODE_FIELDS[kind]}
        allowed = ("kind", "description", *rules)
        required = [name for name, rule in rules.items() if rule.default is _REQUIRED]
        found = self.keys(ymap, f"{context} (kind {kind})", allowed, required, rules)
        attrs: dict[str, Any] = {"description": ""}
        if "description" in found:
            attrs["description"] = self.text(found["description"][1], "a description")
        given: dict[str, Loc] = {}
        complete = all(name in found for name in required)
        for name, rule in rules.items():
            if name in found:
                given[name] = found[name][1].loc
                checked = self.value(found[name][1], rule, visible)
                if checked is None:
                    complete = False
                attrs[name] = checked
            elif rule.default is not _REQUIRED:
                attrs[name] = None if rule.default is _ABSENT else rule.default
        node = Node(node_id, kind, loc, attrs=attrs)
        if "model" in attrs:
            node.model = attrs.pop("model")
        if complete:
            self.kind_checks(node, given, ymap.loc, visible, file)
        return node, True

    def kind_checks(self, node: Node, given: dict[str, Loc], map_loc: Loc, visible: Mapping[str, ModelRef],
                    file: str) -> None:
        """Cross-field rules and derived defaults of each node kind (docs/spec.md)."""
        attrs, kind = node.attrs, node.kind
        model = visible.get(node.model) if node.model else None

        def fits_context(tokens: int, what: str, loc_key: str, arch: ModelArch | None) -> None:
            if arch is not None and tokens > arch.max_context:
                self.error(given.get(loc_key, map_loc), f"{what} ({tokens}) exceeds {arch.name}'s context window "
                                                        f"of {arch.max_context} tokens")

        arch = model.arch if model else None
        if kind == "input":
            produces = attrs["produces"]
            uses = {"audio": "audio_seconds", "embedding": "dim"}.get(produces, "tokens")
            for key in ("tokens", "audio_seconds", "dim"):
                if key != uses:
                    if key in given:
                        self.error(given[key], f"'{key}' does not apply to an input that produces {produces}")
                    attrs.pop(key)
            if attrs["bytes"] is None:
                attrs["bytes"] = self.input_bytes(attrs)
        elif kind in ("llm", "model"):
            if kind == "model" and arch and arch.kind == "encoder" and attrs["output_tokens"]:
                self.error(given["output_tokens"], f"model '{node.model}' is an encoder: it generates no tokens "
                                                   "(output_tokens must be 0)")
            else:
                fits_context(attrs["input_tokens"] + attrs["output_tokens"], "input_tokens + output_tokens",
                             "output_tokens" if "output_tokens" in given else "input_tokens", arch)
        elif kind == "speech_to_text":
            fits_context(attrs["output_tokens"], "output_tokens", "output_tokens", arch)
        elif kind == "text_to_speech":
            fits_context(attrs["input_tokens"], "input_tokens", "input_tokens", arch)
        elif kind in ("embedding", "kv_cache"):
            fits_context(attrs["tokens"], "tokens", "tokens", arch)
        elif kind == "tool":
            if attrs["tool"] is None:
                attrs["tool"] = node.id
            if attrs["latency_p99_ms"] is None:
                attrs["latency_p99_ms"] = attrs["latency_ms"]
            elif attrs["latency_p99_ms"] < attrs["latency_ms"]:
                self.error(given["latency_p99_ms"], f"latency_p99_ms ({_fmt(attrs['latency_p99_ms'])}) is below "
                                                    f"latency_ms ({_fmt(attrs['latency_ms'])})")
        elif kind in ("memory_lookup", "memory_store"):
            embed = visible.get(attrs["embed_model"]) if attrs["embed_model"] else None
            node.model = attrs["embed_model"]
            if embed is not None:
                if attrs["dim"] is None:
                    attrs["dim"] = embed.arch.d_model
                elif attrs["dim"] != embed.arch.d_model:
                    self.error(given["dim"], f"dim {attrs['dim']} does not match embed_model '{node.model}' "
                                             f"({embed.arch.name}), whose vectors have {embed.arch.d_model} elements")
                tokens_key = "query_tokens" if kind == "memory_lookup" else "tokens"
                fits_context(attrs[tokens_key], tokens_key, tokens_key, embed.arch)
            elif attrs["dim"] is None:
                self.error(map_loc, f"{kind} node '{node.id}' needs 'dim' (the vector length) or 'embed_model'")
            if kind == "memory_lookup" and attrs["top_k"] > attrs["n_vectors"]:
                self.error(given.get("top_k", map_loc), f"top_k ({attrs['top_k']}) is larger than n_vectors "
                                                        f"({attrs['n_vectors']})")
        elif kind == "agent":
            self.agent(node, given, map_loc, visible, file)

    @staticmethod
    def input_bytes(attrs: dict[str, Any]) -> int:
        produces = attrs["produces"]
        if produces == "audio":
            return math.ceil(attrs["audio_seconds"] * AUDIO_BYTES_PER_S)
        if produces == "embedding":
            return attrs["dim"] * EMBEDDING_ELEMENT_BYTES
        per_token = BYTES_PER_TOKEN_ID if produces == "tokens" else BYTES_PER_TEXT_TOKEN
        return attrs["tokens"] * per_token

    def agent(self, node: Node, given: dict[str, Loc], map_loc: Loc, visible: Mapping[str, ModelRef],
              file: str) -> None:
        attrs = node.attrs
        graph_node, include = attrs.pop("graph"), attrs.pop("file")
        attrs["file"] = ""
        attrs["agent_name"] = node.id
        if (graph_node is None) == (include is None):
            self.error(map_loc, f"agent node '{node.id}' needs exactly one of 'graph' (an inline graph) or "
                                "'file' (an agent file)")
            return
        context = f" in agent '{node.id}'"
        if graph_node is not None:
            ymap = self.mapping(graph_node, f"the graph of agent '{node.id}'")
            if ymap is None:
                return
            found = self.keys(ymap, f"in the graph of agent '{node.id}'", ("nodes", "edges"), ("nodes", "edges"))
            if "nodes" in found and "edges" in found:
                node.subgraph = self.graph(found["nodes"][1], found["edges"][1], ymap.loc, context, visible, file)
            return
        include_loc = given["file"]
        display = os.path.normpath(os.path.join(os.path.dirname(file), include))
        real = os.path.realpath(display)
        if len(self.include_stack) > MAX_AGENT_FILE_NESTING:
            self.error(include_loc, f"agent files nest deeper than {MAX_AGENT_FILE_NESTING} levels: "
                                    f"{' -> '.join(self.display_stack[:2])} -> ... -> {display}")
            return
        if real in self.include_stack:
            chain = " -> ".join([*self.display_stack, display])
            self.error(include_loc, f"agent files include each other in a cycle: {chain}")
            return
        try:
            data = read_agent_file(display)
        except UnreadableFile as exc:
            self.error(include_loc, f"cannot read agent file '{include}' ({display}): {exc}")
            return
        self.included_sha256[display] = hashlib.sha256(data).hexdigest()
        loaded = self.load_file(display, data, include_loc, visible)
        if loaded is None:
            return
        root, top, child_visible = loaded
        if "name" in top:
            attrs["agent_name"] = self.string(top["name"][1], "the agent's name") or node.id
        attrs["file"] = display
        self.include_stack.append(real)
        self.display_stack.append(display)
        try:
            node.subgraph = self.graph(top.get("nodes", (None, None))[1], top.get("edges", (None, None))[1],
                                       root.loc, f" in agent file {display}", child_visible, display)
        finally:
            self.include_stack.pop()
            self.display_stack.pop()

    # ---- edges ----

    def edges(self, node: YamlNode | None, nodes: dict[str, Node]) -> tuple[list[Edge], bool]:
        """Edges in file order; the flag is False when an endpoint is unknown (shape checks would mislead)."""
        if node is None:
            return [], False
        if not isinstance(node, YamlList):
            self.error(node.loc, f"edges must be a list of 'a -> b' items, got {node.describe()}")
            return [], False
        edges: list[Edge] = []
        seen: dict[tuple[str, str], Loc] = {}
        all_known = True
        for item in node.items:
            parsed = self.edge_item(item)
            if parsed is None:
                all_known = False
                continue
            chain, probability, max_iterations = parsed
            for end in chain:
                if end.name not in nodes:
                    hint = _did_you_mean(end.name, list(nodes))
                    self.error(end.loc, f"edge endpoint '{end.name}' is not a node{hint}")
                    all_known = False
            if not all(end.name in nodes for end in chain):
                continue
            for src, dst in itertools.pairwise(chain):
                key = (src.name, dst.name)
                if key in seen:
                    self.error(src.loc, f"duplicate edge '{_edge_name(*key)}' (first at line {seen[key].line})")
                    continue
                seen[key] = src.loc
                edges.append(Edge(src.name, dst.name, src.loc, probability, max_iterations))
        return edges, all_known

    def edge_item(self, item: YamlNode) -> tuple[list[_Endpoint], float, int | None] | None:
        form = "an edge is 'a -> b -> c' or a one-key mapping {'a -> b': {probability: P, max_iterations: N}}"
        if isinstance(item, YamlScalar) and isinstance(item.value, str):
            chain = self.chain(item)
            return (chain, 1.0, None) if chain else None
        if not isinstance(item, YamlMap) or len(item.entries) != 1:
            self.error(item.loc, f"{form}; got {item.describe()}"
                       + (f" with {len(item.entries)} keys" if isinstance(item, YamlMap) else ""))
            return None
        (key, (key_node, value)), = item.entries.items()
        chain = self.chain(key_node)
        if not chain:
            return None
        if len(chain) != 2:
            self.error(key_node.loc, f"edge attributes apply to one edge: write 'a -> b', not a chain of "
                                     f"{len(chain)} nodes")
            return None
        probability, max_iterations = 1.0, None
        context = f"in edge '{_edge_name(chain[0].name, chain[1].name)}'"
        if isinstance(value, YamlScalar) and value.value is None:
            return chain, probability, max_iterations  # `- a -> b:` with nothing after it
        attrs = self.mapping(value, f"the attributes of edge '{key}'")
        if attrs is None:
            return None
        found = self.keys(attrs, context, ("probability", "max_iterations"))
        ok = True
        if "probability" in found:
            p_node = found["probability"][1]
            p = self.number(p_node, FieldRule("probability", "number", unit="a probability in (0, 1]"))
            if p is not None and p > 1:
                self.error(p_node.loc, f"probability must be in (0, 1], got {p_node.text}")
                p = None
            ok &= p is not None
            probability = p if p is not None else 1.0
        if "max_iterations" in found:
            max_iterations = self.number(found["max_iterations"][1],
                                         FieldRule("max_iterations", "int", unit="iterations",
                                                   limit=MAX_ITERATIONS))
            ok &= max_iterations is not None
        if not ok:
            return None
        return chain, probability, max_iterations

    def chain(self, node: YamlScalar) -> list[_Endpoint] | None:
        text = node.text
        if "->" not in text:
            self.error(node.loc, f"edge '{text}' has no '->'; write 'source -> target'")
            return None
        ends: list[_Endpoint] = []
        offset = 0
        first_col = node.loc.col + (1 if node.quoted else 0)
        for part in text.split("->"):
            name = part.strip()
            start = offset + (len(part) - len(part.lstrip()))
            loc = Loc(node.loc.file, node.loc.line, first_col + start)
            if not name:
                self.error(loc, f"edge '{text}' has an empty node name")
                return None
            ends.append(_Endpoint(name, loc))
            offset += len(part) + 2
        return ends

    # ---- graph shape ----

    def check_graph(self, graph: Graph, where: Loc, context: str, shape_checks: bool) -> None:
        nodes, edges = graph.nodes, graph.edges
        self.check_derived_names(nodes)
        successors: dict[str, list[str]] = {n: [] for n in nodes}
        predecessors: dict[str, list[str]] = {n: [] for n in nodes}
        branches_out: dict[str, list[Edge]] = {n: [] for n in nodes}
        for edge in edges:
            successors[edge.src].append(edge.dst)
            predecessors[edge.dst].append(edge.src)
            if edge.probability < 1:
                branches_out[edge.src].append(edge)
        # branch probabilities
        for node_id, branches in branches_out.items():
            total = sum(e.probability for e in branches)
            if total > 1 + 1e-9:
                parts = " + ".join(f"{_fmt(e.probability)} ({e.dst})" for e in branches)
                self.error(branches[0].loc, f"the conditional branches out of '{node_id}' have probabilities "
                                            f"summing to {_fmt(round(total, 9))} > 1: {parts}")
        # loop bounds: every max_iterations edge must close a cycle; every cycle needs one
        for edge in edges:
            if edge.max_iterations is not None and not _reaches(successors, edge.dst, edge.src):
                self.error(edge.loc, f"max_iterations on edge '{_edge_name(edge.src, edge.dst)}', which closes no "
                                     f"cycle ('{edge.src}' is not reachable from '{edge.dst}'); put it on the edge "
                                     "that loops back")
        for closing, cycle in _unbounded_cycles(nodes, edges):
            self.error(closing.loc, f"unbounded cycle {' -> '.join(cycle)}: add max_iterations to one of its edges")
        if not shape_checks:
            return
        kinds = {n: node.kind for n, node in nodes.items()}
        inputs = [n for n, k in kinds.items() if k == "input"]
        outputs = [n for n, k in kinds.items() if k == "output"]
        if not inputs:
            self.error(where, f"the graph{context} has no input node (kind: input)")
        if not outputs:
            self.error(where, f"the graph{context} has no output node (kind: output)")
        for edge in edges:
            if kinds[edge.dst] == "input":
                self.error(edge.loc, f"edge '{_edge_name(edge.src, edge.dst)}' enters input node '{edge.dst}'; "
                                     "inputs have no incoming edges")
            if kinds[edge.src] == "output":
                self.error(edge.loc, f"edge '{_edge_name(edge.src, edge.dst)}' leaves output node '{edge.src}'; "
                                     "outputs have no outgoing edges")
        if not inputs or not outputs:
            return
        from_input = _reachable(successors, inputs)
        to_output = _reachable(predecessors, outputs)
        for node_id, node in nodes.items():
            if node_id not in from_input and node_id not in to_output:
                self.error(node.loc, f"node '{node_id}' is disconnected: no input reaches it and it reaches no output")
            elif node_id not in from_input:
                self.error(node.loc, f"node '{node_id}' is not reachable from any input")
            elif node_id not in to_output:
                self.error(node.loc, f"node '{node_id}' does not reach any output")

    def check_derived_names(self, nodes: Mapping[str, Node]) -> None:
        """hetc names the ops a node becomes `<id>.<part>` (answer.prefill, answer.decode) and the nodes of a
        nested agent `<agent>/<node>`, so `<id>.` and `<id>/` belong to node <id>: another id starting
        that way would collide with them in the IR and the plan."""
        for node_id, node in nodes.items():
            for at, char in enumerate(node_id):
                owner = nodes.get(node_id[:at]) if char in "./" else None
                if owner is not None:
                    parts = "the ops" if char == "." else "the nodes inside"
                    self.error(node.loc, f"node id '{node_id}' collides with the names hetc gives {parts} of node "
                                         f"'{owner.id}' (line {owner.loc.line}): '{owner.id}{char}<part>'; rename "
                                         "one of them")
                    break

    @staticmethod
    def fill_upstream_defaults(graph: Graph) -> None:
        """speech_to_text.audio_seconds defaults to the audio input feeding it (else 10 s)."""
        feeding: dict[str, list[str]] = {}
        for edge in graph.edges:
            feeding.setdefault(edge.dst, []).append(edge.src)
        for node in graph.nodes.values():
            if node.kind == "speech_to_text" and node.attrs.get("audio_seconds", 0) is None:
                sources = [graph.nodes[src] for src in feeding.get(node.id, ())]
                known = [s.attrs["audio_seconds"] for s in sources
                         if s.kind == "input" and s.attrs.get("produces") == "audio" and s.attrs.get("audio_seconds")]
                node.attrs["audio_seconds"] = max(known) if known else 10.0

    # ---- slo, traffic, hardware ----

    def slo(self, node: YamlNode | None) -> SLO:
        slo = SLO()
        ymap = self.mapping(node, "slo") if node is not None else None
        if ymap is None:
            return slo
        slo.loc = ymap.loc
        found = self.keys(ymap, "in slo", ("latency_ms", "ttft_ms", "tbt_ms"),
                          rules={k: FieldRule(k, "number", **_MS) for k in ("latency_ms", "ttft_ms", "tbt_ms")})
        ms_rule = FieldRule("latency_ms", "number", **_MS)
        if "latency_ms" in found:
            latency = found["latency_ms"][1]
            if isinstance(latency, YamlMap):
                targets = self.keys(latency, "in slo.latency_ms", PERCENTILES)
                for pct, (_, value) in targets.items():
                    ms = self.number(value, FieldRule(pct, "number", **_MS))
                    if ms is not None:
                        slo.latency_percentiles_ms[pct] = ms
                if not latency.entries:
                    self.error(latency.loc, f"slo.latency_ms needs at least one of {'|'.join(PERCENTILES)}")
                ordered = [(p, slo.latency_percentiles_ms[p]) for p in PERCENTILES if p in slo.latency_percentiles_ms]
                for (low_p, low), (high_p, high) in itertools.pairwise(ordered):
                    if low > high:
                        self.error(targets[high_p][1].loc, f"the {high_p} latency target ({_fmt(high)} ms) is below "
                                                           f"the {low_p} target ({_fmt(low)} ms)")
                slo.latency_percentiles_ms = dict(sorted(slo.latency_percentiles_ms.items()))
                if ordered:
                    slo.percentile, slo.latency_ms = ordered[-1]
            else:
                ms = self.number(latency, ms_rule)
                if ms is not None:
                    slo.latency_ms, slo.percentile = ms, "p99"
                    slo.latency_percentiles_ms = {"p99": ms}
        for key in ("ttft_ms", "tbt_ms"):
            if key in found:
                setattr(slo, key, self.number(found[key][1], FieldRule(key, "number", **_MS)))
        if slo.ttft_ms is not None and slo.latency_ms is not None and slo.ttft_ms > slo.latency_ms:
            self.error(found["ttft_ms"][1].loc, f"ttft_ms ({_fmt(slo.ttft_ms)}) exceeds the end-to-end latency "
                                                f"target ({_fmt(slo.latency_ms)} ms)")
        return slo

    def traffic(self, node: YamlNode | None, top_loc: Loc) -> Traffic:
        traffic = Traffic()
        if node is None:
            self.error(top_loc, "missing required key 'traffic' at the top level (requests_per_s: N, or "
                                "objective: tokens_per_dollar for offline work)")
            return traffic
        ymap = self.mapping(node, "traffic")
        if ymap is None:
            return traffic
        traffic.loc = ymap.loc
        found = self.keys(ymap, "in traffic", ("requests_per_s", "objective", *OFFLINE_VOLUME_KEYS))
        if ("requests_per_s" in found) == ("objective" in found):
            self.error(ymap.loc, "traffic needs exactly one of 'requests_per_s' (online) or 'objective' (offline)")
        self.offline_volume(ymap, found, traffic)
        if "requests_per_s" in found:
            traffic.requests_per_s = self.number(found["requests_per_s"][1], FieldRule(
                "requests_per_s", "number", unit="requests per second", limit=MAX_RPS))
        if "objective" in found:
            traffic.objective = self.choice(found["objective"][1], FieldRule("objective", "choice",
                                                                            choices=OBJECTIVES))
        return traffic

    def offline_volume(self, ymap: YamlMap, found: dict, traffic: Traffic) -> None:
        """Offline work is sized by its volume: tokens_per_day, or requests within deadline_h hours."""
        given = [k for k in OFFLINE_VOLUME_KEYS if k in found]
        if "objective" not in found or "requests_per_s" in found:  # online (or already reported)
            for key in given:
                self.error(found[key][0].loc, f"'{key}' sizes offline work; it needs 'objective' (not requests_per_s)")
            return
        if given not in (["tokens_per_day"], ["requests", "deadline_h"]):
            self.error(ymap.loc, "offline traffic needs its volume: 'tokens_per_day: N' (generated tokens a day), or "
                                 "'requests: N' with 'deadline_h: H' (N requests done within H hours)")
        rules = {"tokens_per_day": FieldRule("tokens_per_day", "number", unit="tokens", limit=MAX_TOKENS_PER_DAY),
                 "requests": FieldRule("requests", "number", unit="requests", limit=MAX_OFFLINE_REQUESTS),
                 "deadline_h": FieldRule("deadline_h", "number", unit="hours", limit=MAX_DEADLINE_H)}
        for key in given:
            setattr(traffic, key, self.number(found[key][1], rules[key]))

    def device(self, node: YamlNode, where: str) -> str | None:
        name = self.string(node, f"a device name in {where}")
        if name is None or self.device_aliases is None:
            return name
        canonical = self.device_aliases.get(name) or self.device_aliases.get(name.strip().lower())
        if canonical is None:
            hint = _did_you_mean(name, sorted(self.device_aliases))
            known = sorted(set(self.device_aliases.values()))
            self.error(node.loc, f"unknown device '{name}' in {where}"
                                 + (hint or f"; known devices: {', '.join(known)}"))
        return canonical

    def hardware(self, node: YamlNode | None) -> Hardware:
        hardware = Hardware()
        ymap = self.mapping(node, "hardware") if node is not None else None
        if ymap is None:
            return hardware
        hardware.loc = ymap.loc
        found = self.keys(ymap, "in hardware", ("pool", "inventory", "pricing"))
        if "pricing" in found:
            hardware.pricing = self.choice(found["pricing"][1], FieldRule("pricing", "choice",
                                                                          choices=PRICING_MODES)) or "ownership"
        if "pool" in found:
            pool_node = found["pool"][1]
            if not isinstance(pool_node, YamlList):
                self.error(pool_node.loc, f"hardware.pool must be a list of device names, got {pool_node.describe()}")
            elif not pool_node.items:
                self.error(pool_node.loc, "hardware.pool is empty; omit it to plan on the whole hardware database")
            else:
                pool: dict[str, str] = {}
                for item in pool_node.items:
                    device = self.device(item, "hardware.pool")
                    if device is None:
                        continue
                    if device in pool:
                        self.error(item.loc, f"device '{device}' is listed twice in hardware.pool (as "
                                             f"'{pool[device]}' and '{item.text}')")
                    pool[device] = getattr(item, "text", device)
                hardware.pool = list(pool)
        if "inventory" in found:
            inventory = self.mapping(found["inventory"][1], "hardware.inventory")
            if inventory is not None:
                self.keys(inventory, "in hardware.inventory", list(inventory.entries))
                for name, (key_node, value) in inventory.entries.items():
                    device = self.device(key_node, "hardware.inventory")
                    entry = self.inventory_entry(name, value)
                    if device is None or entry is None:
                        continue
                    if device in hardware.inventory:
                        self.error(key_node.loc, f"device '{device}' appears twice in hardware.inventory")
                    elif hardware.pool is not None and device not in hardware.pool:
                        self.error(key_node.loc, f"inventory device '{name}' is not in hardware.pool; add it to "
                                                 "the pool or remove it here")
                    hardware.inventory[device] = entry
        return hardware

    def inventory_entry(self, name: str, node: YamlNode) -> Inventory | None:
        ymap = self.mapping(node, f"hardware.inventory '{name}'")
        if ymap is None:
            return None
        found = self.keys(ymap, f"in hardware.inventory '{name}'", ("count", "sunk"), ("count",))
        count = self.number(found["count"][1], FieldRule("count", "int", unit="devices", allow_zero=True,
                                                         limit=MAX_DEVICES)) if "count" in found else None
        sunk = self.boolean(found["sunk"][1], FieldRule("sunk", "bool")) if "sunk" in found else False
        if count is None or sunk is None:
            return None
        return Inventory(int(count), sunk)


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


def _reachable(adjacency: Mapping[str, list[str]], starts: Sequence[str]) -> set[str]:
    seen, stack = set(starts), list(starts)
    while stack:
        for nxt in adjacency[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _reaches(adjacency: Mapping[str, list[str]], src: str, dst: str) -> bool:
    return dst in _reachable(adjacency, [src])


def _unbounded_cycles(nodes: Mapping[str, Any], edges: Sequence[Edge]) -> list[tuple[Edge, list[str]]]:
    """Cycles made of edges without max_iterations: one per back edge of a depth-first search in file order.

    The back edges of a DFS break every cycle, so reporting the cycle each one closes lists every place a
    bound is missing (a cycle may also share edges with another one reported).
    """
    outgoing: dict[str, list[Edge]] = {n: [] for n in nodes}
    for edge in edges:
        if edge.max_iterations is None:
            outgoing[edge.src].append(edge)
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = finished
    found: list[tuple[Edge, list[str]]] = []
    for root in nodes:
        if root in state:
            continue
        path = [root]
        pending = [iter(outgoing[root])]  # iterative: a spec may hold thousands of nodes
        state[root] = 1
        while pending:
            edge = next(pending[-1], None)
            if edge is None:
                state[path.pop()] = 2
                pending.pop()
                continue
            if state.get(edge.dst) == 1:
                found.append((edge, [*path[path.index(edge.dst):], edge.dst]))
            elif edge.dst not in state:
                state[edge.dst] = 1
                path.append(edge.dst)
                pending.append(iter(outgoing[edge.dst]))
    return found


# An agent file names its format version on a top-level line (`hetc: 1`, or `"hetc": 1` in JSON). A file
# without one is not shown at all: its keys and values would otherwise be quoted in error messages, and a
# spec can name any file (`file: /etc/shadow`).
_VERSION_LINE = re.compile(rb"""(?:^|[{,])[ \t]*(["']?)hetc\1[ \t]*:[ \t]*[0-9]+[ \t]*(?:$|[,}#])""", re.M)


def read_agent_file(path: str | Path) -> bytes:
    """An included agent file's bytes: a regular file of at most MAX_FILE_BYTES, read without blocking on a
    FIFO or following a device forever; UnreadableFile says why not, never quoting the file."""
    data = read_regular_file(path, MAX_FILE_BYTES, "specs")
    if not _VERSION_LINE.search(data):
        raise UnreadableFile("not a hetc agent file (no 'hetc: 1' line at its top level); its content is not shown")
    return data


def load_spec(path: str | Path, device_aliases: Mapping[str, str] | None = None) -> Spec:
    """Read and validate a spec file. Raises HetcError with every diagnostic found.

    device_aliases maps each accepted device name (canonical ids and aliases) to its canonical id; with
    None, device names are not checked and stay as written.
    """
    display = str(path)
    try:
        display, data = read_input(path, MAX_FILE_BYTES, "specs")  # `-` is standard input
    except UnreadableFile as exc:
        raise HetcError([Diagnostic(Loc(display), f"cannot read the spec: {exc}")]) from None
    loader = _Loader(device_aliases)
    loader.display_stack = [display]
    loader.include_stack = [os.path.realpath(display)]
    loaded = loader.load_file(display, data, None, {})
    if loaded is None:
        raise HetcError(loader.diags)
    root, top, visible = loaded
    name = loader.string(top["name"][1], "the spec's name") if "name" in top else None
    description = loader.text(top["description"][1], "a description") if "description" in top else ""
    graph = loader.graph(top.get("nodes", (None, None))[1], top.get("edges", (None, None))[1], root.loc, "",
                         visible, display)
    slo = loader.slo(top["slo"][1] if "slo" in top else None)
    traffic = loader.traffic(top["traffic"][1] if "traffic" in top else None, root.loc)
    hardware = loader.hardware(top["hardware"][1] if "hardware" in top else None)
    if traffic.tokens_per_day is not None and graph is not None and not _generates_tokens(graph):
        loader.error(traffic.loc, "tokens_per_day sizes offline work by generated tokens, and no llm node generates "
                                  "any (output_tokens > 0); give 'requests' and 'deadline_h' instead")
    if loader.diags:
        raise HetcError(loader.diags)
    return Spec(
        version=SPEC_VERSION, name=name or "", path=display, graph=graph, models=dict(loader.models), slo=slo,
        traffic=traffic, hardware=hardware, source_sha256=hashlib.sha256(data).hexdigest(),
        description=description or "", included_sha256=dict(sorted(loader.included_sha256.items())),
    )


def _generates_tokens(graph) -> bool:
    """Whether an llm node of the graph or of its sub-agents generates output tokens."""
    todo = [graph]
    while todo:
        for node in todo.pop().nodes.values():
            if node.kind == "llm" and node.attrs.get("output_tokens", 0) > 0:
                return True
            if node.subgraph is not None:
                todo.append(node.subgraph)
    return False
