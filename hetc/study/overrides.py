"""`hetc sweep --over KEY=V1,V2`: the settings a sweep may vary, parsing them, their combinations, and applying
one combination to a loaded spec (never to the YAML file)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from hetc.errors import HetcError, Loc

POOL_SEPARATOR = "+"  # a pool is one value of --over, so its devices are joined by '+'

# What `--over KEY=...` can vary. A key may name one model or node: `precision.chat`, `input_tokens.llm`.
OVER_KEYS: dict[str, str] = {
    "pool": "hardware pool: device ids or aliases joined by '+' (e.g. nvidia-h100-sxm+intel-xeon-8480)",
    "precision": "weight (and KV) precision of every model; precision.MODEL for one model",
    "model": "preset of every model an llm node uses; model.MODEL for one model",
    "input_tokens": "prompt tokens of every llm node; input_tokens.NODE for one node",
    "output_tokens": "generated tokens of every llm node; output_tokens.NODE for one node",
    "tokens": "IN:OUT prompt and generated tokens of every llm node (the paper's token shapes)",
    "ttft_ms": "SLA: time to first token (ms; none = no limit)",
    "tbt_ms": "SLA: time between tokens (ms; none = no limit)",
    "latency_ms": "SLA: end-to-end latency of every path (ms; none = no limit)",
    "requests_per_s": "request rate (requests/s)",
    "pricing": "ownership or cloud",
    "inventory": "keep (the spec's owned devices) or none (buy everything)",
}
_PER_ITEM_KEYS = ("precision", "model", "input_tokens", "output_tokens")


# ------------------------------------------------------------------------------------------- overrides


@dataclass(frozen=True)
class Over:
    key: str  # e.g. "precision" or "precision.chat"
    values: tuple[str, ...]


def parse_over(text: str) -> Over:
    """`KEY=V1,V2,...` -> Over; a HetcError naming --over when malformed or the key is unknown."""
    where = Loc("--over")
    key, sep, values_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise HetcError(f"expected KEY=V1,V2,... in --over {text!r}", where)
    base, _, item = key.partition(".")
    if base not in OVER_KEYS:
        known = "; ".join(f"{k}: {v}" for k, v in OVER_KEYS.items())
        raise HetcError(f"unknown --over key {base!r}; known keys: {known}", where)
    if item and base not in _PER_ITEM_KEYS:
        raise HetcError(f"--over key {base!r} takes no '.NAME' suffix (only {', '.join(_PER_ITEM_KEYS)} do)", where)
    values = tuple(v.strip() for v in values_text.split(","))
    if not values or any(not v for v in values):
        raise HetcError(f"--over {key}: empty value in {values_text!r}", where)
    if len(set(values)) != len(values):
        raise HetcError(f"--over {key}: a value is repeated in {values_text!r}", where)
    return Over(key, values)


def combinations(overs: Sequence[Over]) -> list[dict[str, str]]:
    """Every combination of the overrides' values, the first --over varying slowest."""
    keys = [o.key for o in overs]
    if len(set(keys)) != len(keys):
        raise HetcError(f"--over names a key twice: {', '.join(sorted(k for k in set(keys) if keys.count(k) > 1))}",
                        Loc("--over"))
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(o.values for o in overs))]


def _number(key: str, text: str, integer: bool) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise HetcError(f"--over {key}: expected {kind}, got {text!r}", Loc("--over")) from None
    if not value > 0:
        raise HetcError(f"--over {key}: expected a positive value, got {text!r}", Loc("--over"))
    return value


def _llm_nodes(spec, item: str, key: str) -> list:
    nodes = [n for n in _all_nodes(spec.graph) if n.kind == "llm"]
    if item:
        nodes = [n for n in nodes if n.id == item]
        if not nodes:
            raise HetcError(f"--over {key}: the spec has no llm node {item!r}", Loc("--over"))
    if not nodes:
        raise HetcError(f"--over {key}: the spec has no llm node", Loc("--over"))
    return nodes


def _all_nodes(graph) -> list:
    found = []
    for node in graph.nodes.values():
        found.append(node)
        if node.subgraph is not None:
            found.extend(_all_nodes(node.subgraph))
    return found


def _models(spec, item: str, key: str, llm_only: bool) -> list:
    if item:
        if item not in spec.models:
            raise HetcError(f"--over {key}: the spec has no model {item!r} (models: {', '.join(sorted(spec.models))})",
                            Loc("--over"))
        return [spec.models[item]]
    if llm_only:
        used = {n.model for n in _all_nodes(spec.graph) if n.kind == "llm"}
        return [spec.models[m] for m in sorted(used)]
    return [spec.models[m] for m in sorted(spec.models)]


def resolve_device(db, name: str, where: str) -> str:
    dev = db.resolve(name)
    if dev is None:
        raise HetcError(f"{where}: unknown device {name!r}; known: {', '.join(sorted(db.devices))}", Loc(where))
    return dev


def apply_overrides(spec, params: dict[str, str], db):
    """A copy of `spec` with every override applied (the loaded spec itself is left alone)."""
    from hetc.model.models import PRECISION_BYTES, resolve_preset

    spec = copy.deepcopy(spec)
    for key, value in params.items():
        base, _, item = key.partition(".")
        if base == "pool":
            spec.hardware.pool = sorted({resolve_device(db, d.strip(), "--over pool")
                                         for d in value.split(POOL_SEPARATOR) if d.strip()})
        elif base == "precision":
            if value not in PRECISION_BYTES:
                raise HetcError(f"--over {key}: unknown precision {value!r}; known: {', '.join(sorted(PRECISION_BYTES))}",
                                Loc("--over"))
            for ref in _models(spec, item, key, llm_only=False):
                if not ref.kv_precision or ref.kv_precision == ref.precision:
                    ref.kv_precision = value  # the KV cache followed the weights; an explicit one stays
                ref.precision = value
        elif base == "model":
            arch = resolve_preset(value)
            if arch is None:
                raise HetcError(f"--over {key}: unknown model preset {value!r}", Loc("--over"))
            for ref in _models(spec, item, key, llm_only=True):
                ref.arch = arch
        elif base in ("input_tokens", "output_tokens"):
            for node in _llm_nodes(spec, item, key):
                node.attrs[base] = int(_number(key, value, integer=True))
        elif base == "tokens":
            inp, sep, out = value.partition(":")
            if not sep:
                raise HetcError(f"--over tokens: expected IN:OUT (e.g. 512:4096), got {value!r}", Loc("--over"))
            for node in _llm_nodes(spec, "", key):
                node.attrs["input_tokens"] = int(_number(key, inp, integer=True))
                node.attrs["output_tokens"] = int(_number(key, out, integer=True))
        elif base in ("ttft_ms", "tbt_ms", "latency_ms"):
            # "none" drops the limit, e.g. latency_ms=none for the paper's TTFT/TBT-only study
            setattr(spec.slo, base, None if value == "none" else _number(key, value, integer=False))
            if base == "latency_ms":
                spec.slo.latency_percentiles_ms = {} if value == "none" else {spec.slo.percentile: spec.slo.latency_ms}
        elif base == "requests_per_s":
            spec.traffic.requests_per_s = _number(key, value, integer=False)
            spec.traffic.objective = None
        elif base == "pricing":
            if value not in ("ownership", "cloud"):
                raise HetcError(f"--over pricing: expected ownership or cloud, got {value!r}", Loc("--over"))
            spec.hardware.pricing = value
        elif base == "inventory":
            if value not in ("keep", "none"):
                raise HetcError(f"--over inventory: expected keep or none, got {value!r}", Loc("--over"))
            if value == "none":
                spec.hardware.inventory = {}
    return spec
