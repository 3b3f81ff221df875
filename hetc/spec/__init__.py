"""The typed agent spec: what hetc.spec.loader produces from YAML and hetc.spec.frontend turns into IR.

Every object keeps the source location of the YAML it came from so later stages can report errors
against the user's file. Field meanings, units and defaults are documented in docs/spec.md.

This package is the spec stage of the compiler (docs/architecture.md): reading YAML with locations,
checking it (the loader and its readers), the node kinds' field rules (fields.py, from the agent ops),
the frontend to IR, and updating a spec from observations (update.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hetc.errors import Loc
from hetc.model.models import ModelArch

SPEC_VERSION = 1

# The data type an edge carries, by producing node kind (an input node declares its own).
PAYLOAD_TYPES = ("text", "tokens", "audio", "embedding", "documents", "kv", "json")


@dataclass
class ModelRef:
    id: str
    arch: ModelArch
    precision: str = "bf16"  # weights
    kv_precision: str = ""  # "" = same as weights
    loc: Loc = Loc("")


@dataclass
class Node:
    id: str
    kind: str
    loc: Loc
    model: str | None = None  # key into Spec.models
    # kind-specific fields after validation, defaults applied (see docs/spec.md), e.g.
    # llm: input_tokens, output_tokens; tool: latency_ms, request_kb, response_kb, compute_ms, ...
    attrs: dict[str, Any] = field(default_factory=dict)
    subgraph: Graph | None = None  # kind == "agent"


@dataclass
class Edge:
    src: str
    dst: str
    loc: Loc
    probability: float = 1.0  # conditional branch: the edge is taken with this probability
    max_iterations: int | None = None  # set on a back edge: how often the loop may repeat


@dataclass
class Graph:
    nodes: dict[str, Node]  # insertion order = file order
    edges: list[Edge]


@dataclass
class SLO:
    latency_ms: float | None = None  # end-to-end, every source-to-sink path, loops at their bound
    percentile: str = "p99"
    ttft_ms: float | None = None
    tbt_ms: float | None = None
    loc: Loc = Loc("")
    # every percentile target the spec gave, e.g. {"p50": 800.0, "p99": 2500.0}; latency_ms/percentile
    # above hold the highest percentile of these (the tail the plan must meet)
    latency_percentiles_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Traffic:
    requests_per_s: float | None = None
    objective: str | None = None  # offline: "tokens_per_dollar"
    # offline volume: generated tokens a day, or `requests` done within `deadline_h` hours
    tokens_per_day: float | None = None
    requests: float | None = None
    deadline_h: float | None = None
    loc: Loc = Loc("")


@dataclass
class Inventory:
    count: int
    sunk: bool = False


@dataclass
class Hardware:
    pool: list[str] | None = None  # device ids (canonical); None = whole database
    inventory: dict[str, Inventory] = field(default_factory=dict)
    pricing: str = "ownership"  # or "cloud"
    loc: Loc = Loc("")


@dataclass
class Spec:
    version: int
    name: str
    path: str
    graph: Graph
    models: dict[str, ModelRef]
    slo: SLO
    traffic: Traffic
    hardware: Hardware
    source_sha256: str = ""
    description: str = ""
    # agent files included by `file:` (path as shown in diagnostics -> sha256 of its bytes)
    included_sha256: dict[str, str] = field(default_factory=dict)
    source: bytes = field(default=b"", repr=False, compare=False)  # the spec file's bytes, as read
