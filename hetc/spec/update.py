"""The spec, updated from observations: traffic rate, token shapes, branch probabilities (and so the expected
loop passes), tool latencies. Works on the YAML document (hetc.yaml_text writes it back), so the new bundle
is compiled from, and keeps, an ordinary spec a user can read and commit.

A loop's bound (`max_iterations`) is the agent's logic, enforced by the runtime's router: it is kept. What a
loop does on average is set by the probability of the branch that continues it, fitted so that the
planner's expected visits (hetc/loops.py, the semantics the planner and simulator share) equal the observed
visits per request. Observed visits the bound cannot produce contradict the spec: exit 2.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from hetc.errors import HetcError, Loc
from hetc.loops import Edge as LoopEdge
from hetc.loops import LoopGraph
from hetc.spec.values import split_unit_key
from hetc.study.observations import Observations


@dataclass
class Change:
    field: str  # e.g. "traffic.requests_per_s", "nodes.llm.input_tokens", "edges.llm -> search.probability"
    old: float
    new: float

    @property
    def relative(self) -> float:
        return abs(self.new - self.old) / abs(self.old) if self.old else math.inf if self.new else 0.0

    def text(self) -> str:
        return f"{self.field}: {self.old:g} -> {self.new:g} ({self.relative * 100:+.1f}%)" if self.old else \
            f"{self.field}: {self.old:g} -> {self.new:g}"


def observed_changes(spec, plan: dict[str, Any], obs: Observations) -> list[Change]:
    """Every spec number the observations give a value for, with its current value (rounded as written)."""
    changes: list[Change] = []
    rate = obs.requests_per_s if obs.requests_per_s is not None else _rate_from_llm_calls(plan, obs)
    if rate is not None and spec.traffic.requests_per_s is not None:
        changes.append(Change("traffic.requests_per_s", spec.traffic.requests_per_s, round(rate, 3)))
    for name, seen in sorted(obs.nodes.items()):
        node = spec.graph.nodes.get(name)
        if node is None:
            raise HetcError(f"observations name stage {name!r}, which the spec does not have", Loc(obs.source))
        for attr, digits in (("input_tokens", 0), ("output_tokens", 0), ("latency_ms", 1), ("latency_p99_ms", 1)):
            value = getattr(seen, attr)
            if value is not None and node.attrs.get(attr) is not None:
                new = max(1, int(round(value))) if digits == 0 else round(value, digits)
                changes.append(Change(f"nodes.{name}.{attr}", float(node.attrs[attr]), float(new)))
    changes += _branch_changes(spec, obs)
    return changes


def _rate_from_llm_calls(plan: dict[str, Any], obs: Observations) -> float | None:
    """Without hetc's own request counter: an LLM's calls per second over its calls per agent request."""
    for stage in plan["stages"]:
        seen = obs.nodes.get(stage["node"])
        if seen and seen.calls_per_s is not None and stage["invocations"]["expected"] > 0:
            visits = seen.visits if seen.visits else stage["invocations"]["expected"]
            return seen.calls_per_s / visits
    return None


def _branch_changes(spec, obs: Observations) -> list[Change]:
    names = list(spec.graph.nodes)
    index = {n: i for i, n in enumerate(names)}
    edges = spec.graph.edges
    probs = [e.probability for e in edges]
    fitted = [i for i, e in enumerate(edges) if e.probability < 1.0 and obs.nodes.get(e.dst)
              and obs.nodes[e.dst].visits is not None]

    def visits(p: list[float]) -> list[float]:
        graph = LoopGraph(len(names), [LoopEdge(index[e.src], index[e.dst], p[i], e.max_iterations is not None,
                                                e.max_iterations or 0) for i, e in enumerate(edges)])
        return graph.expected_visits()

    for _ in range(4 if len(fitted) > 1 else 1):  # coordinate-wise: each branch fitted to its stage's visits
        for i in fitted:
            target, dst = obs.nodes[edges[i].dst].visits, index[edges[i].dst]
            lo, hi = 0.0, 1.0
            top = visits(probs[:i] + [hi] + probs[i + 1:])[dst]
            if target > top * (1 + 1e-6) + 1e-9:
                raise HetcError(f"metric hetc_stage_visits_per_request: stage {edges[i].dst!r} observed "
                                f"{target:g} visits per request, more than the spec's loop bound allows "
                                f"({top:g})", Loc(obs.source))
            for _ in range(40):
                mid = (lo + hi) / 2
                if visits(probs[:i] + [mid] + probs[i + 1:])[dst] < target:
                    lo = mid
                else:
                    hi = mid
            probs[i] = (lo + hi) / 2
    return [Change(f"edges.{edges[i].src} -> {edges[i].dst}.probability", edges[i].probability,
                   round(min(max(probs[i], 0.001), 0.999), 3)) for i in fitted]


def significant(changes: list[Change], band_pct: float) -> list[Change]:
    """Changes outside the hysteresis band (relative to the spec's value)."""
    return [c for c in changes if c.relative * 100.0 > band_pct]


def apply_changes(doc: dict[str, Any], changes: list[Change], source: str) -> dict[str, Any]:
    """A copy of the spec document with `changes` written in (each field in its canonical unit key)."""
    doc = copy.deepcopy(doc)
    for change in changes:
        section, rest = change.field.split(".", 1)
        if section == "traffic":
            _set(doc.setdefault("traffic", {}), "requests_per_s", change.new)
        elif section == "nodes":
            name, attr = rest.rsplit(".", 1)
            value = int(change.new) if attr.endswith("tokens") else change.new
            _set(doc["nodes"][name], attr, value)
        else:
            _set_edge_probability(doc, rest.rsplit(".", 1)[0], change.new, source)
    return doc


def _set(mapping: dict[str, Any], key: str, value: Any) -> None:
    base = split_unit_key(key)[0]
    for other in [k for k in mapping if k != key and (k == base or split_unit_key(k)[0] == base)]:
        del mapping[other]  # the same field given in another unit (latency_s, requests_per_min)
    mapping[key] = value


def _set_edge_probability(doc: dict[str, Any], edge: str, probability: float, source: str) -> None:
    src, dst = (part.strip() for part in edge.split("->"))
    for item in doc.get("edges", []):
        if isinstance(item, dict):
            for key, attrs in item.items():
                ends = [part.strip() for part in str(key).split("->")]
                if ends == [src, dst] and isinstance(attrs, dict):
                    attrs["probability"] = probability
                    return
    raise HetcError(f"cannot update the probability of edge {src} -> {dst}: write it as `{src} -> {dst}: "
                    "{probability: P}` in the spec", Loc(source))
