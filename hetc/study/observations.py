"""Observed load, read from what really runs: Prometheus metrics of hetc's runtime and of vLLM servers, as a
text exposition snapshot or a Prometheus HTTP API query_range export, or `hetc simulate --json` output.

Everything is reduced to one `Observations`: the agent's request rate and, per spec node, the mean prompt
and generation tokens per call, the mean visits per request (branches and loops) and a tool's mean and p99
latency. Metric names (docs/replan.md lists them with their sources):
- hetc runtime (hetc/runtime/metrics.py): hetc_requests_total, hetc_stage_seconds, hetc_stage_visits_per_request,
  hetc_stage_queue; the label `stage` is a plan stage id (or a spec node id);
- vLLM: vllm:request_prompt_tokens, vllm:request_generation_tokens (histograms), vllm:prompt_tokens_total,
  vllm:generation_tokens_total, vllm:e2e_request_latency_seconds (its count is the calls served),
  vllm:num_requests_running/waiting; the label `model_name` is the served model (an HF repo id, the
  model's preset name, the spec's model key or the LLM node id).
Observations that contradict the plan (an unknown stage or model, a negative count, non-monotonic histogram
buckets, NaN) are a HetcError naming the metric: exit 2.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hetc.errors import HetcError, Loc, printable
from hetc.userfiles import UnreadableFile, read_input

MAX_OBSERVATIONS_BYTES = 64 << 20
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass
class NodeObservation:
    input_tokens: float | None = None  # mean prompt tokens per call
    output_tokens: float | None = None  # mean generated tokens per call
    visits: float | None = None  # mean calls per agent request
    latency_ms: float | None = None  # a tool's mean call latency
    latency_p99_ms: float | None = None
    calls_per_s: float | None = None  # calls the node's servers completed per second
    ttft_p99_ms: float | None = None  # observed, reported beside the SLO (bucket upper bound)
    tbt_p99_ms: float | None = None
    waiting: float | None = None  # vllm:num_requests_waiting summed over the node's servers


@dataclass
class Observations:
    source: str
    requests_per_s: float | None = None
    nodes: dict[str, NodeObservation] = field(default_factory=dict)
    queue: dict[str, float] = field(default_factory=dict)  # node -> calls waiting or running (router)

    def node(self, name: str) -> NodeObservation:
        return self.nodes.setdefault(name, NodeObservation())


@dataclass
class _Sample:
    name: str
    labels: dict[str, str]
    value: float
    line: int


def _fail(path: str, line: int, metric: str, message: str) -> HetcError:
    return HetcError(f"metric {printable(metric)}: {message}", Loc(path, line))


# ------------------------------------------------------------------------------------------- readers


def read_observations(path: str, plan: dict[str, Any], window_s: float | None = None) -> Observations:
    """Observations in `path` (format detected from its content) mapped onto `plan`'s stages and nodes."""
    try:
        shown, data = read_input(path, MAX_OBSERVATIONS_BYTES, "observation files")
    except UnreadableFile as exc:
        raise HetcError(f"cannot read observations: {exc}", Loc(str(path))) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HetcError("observations are not UTF-8 text", Loc(shown)) from None
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HetcError(f"not valid JSON: {exc.msg}", Loc(shown, exc.lineno, exc.colno)) from None
        if isinstance(doc, dict) and isinstance(doc.get("simulation"), dict):  # `hetc simulate --json` wraps it
            doc = doc["simulation"]
        if isinstance(doc, dict) and "stages" in doc and "rate_rps" in doc:
            return _from_simulation(doc, plan, shown)
        samples, window = _query_range(doc, shown)
    else:
        samples, window = _exposition(text, shown), window_s
    return _interpret(samples, window, plan, shown)


def _number(text: str, path: str, line: int, metric: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, line, metric, f"value {printable(text)!s} is not a number") from None
    if math.isnan(value):
        raise _fail(path, line, metric, "value is NaN")
    return value


def _exposition(text: str, path: str) -> list[_Sample]:
    """Prometheus text exposition format 0.0.4 (comments, `name{labels} value [timestamp]`)."""
    samples = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise HetcError("expected a Prometheus sample `name{label=\"value\"} number`", Loc(path, number))
        name, labels_text = match.group(1), match.group(3) or ""
        labels = {}
        for label in _LABEL.finditer(labels_text):
            labels[label.group(1)] = re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], label.group(2))
        samples.append(_Sample(name, labels, _number(match.group(4), path, number, name), number))
    return samples


def _query_range(doc: Any, path: str) -> tuple[list[_Sample], float | None]:
    """A /api/v1/query_range answer: each series becomes its increase over the range (counters, histogram
    buckets) or its last value (gauges); the range is the observation window."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise HetcError("expected a Prometheus query_range answer ({\"data\": {\"resultType\": \"matrix\", "
                        "\"result\": [...]}}) or `hetc simulate --json` output", Loc(path))
    samples, first, last = [], math.inf, -math.inf
    for index, series in enumerate(data["result"], 1):
        metric = series.get("metric") if isinstance(series, dict) else None
        values = series.get("values") if isinstance(series, dict) else None
        if not isinstance(metric, dict) or not isinstance(values, list) or not values:
            raise HetcError(f"result {index}: expected {{\"metric\": {{...}}, \"values\": [[t, \"v\"], ...]}}",
                            Loc(path))
        name = str(metric.get("__name__", ""))
        try:
            points = [(float(t), _number(str(v), path, 0, name)) for t, v in values]
        except (TypeError, ValueError):
            raise _fail(path, 0, name, f"result {index}: values must be [timestamp, \"number\"] pairs") from None
        first, last = min(first, points[0][0]), max(last, points[-1][0])
        cumulative = name.endswith(("_total", "_bucket", "_sum", "_count"))
        value = points[-1][1] - points[0][1] if cumulative else points[-1][1]
        labels = {str(k): str(v) for k, v in metric.items() if k != "__name__"}
        samples.append(_Sample(name, labels, value, 0))
    return samples, (last - first if last > first else None)


def _from_simulation(doc: dict[str, Any], plan: dict[str, Any], path: str) -> Observations:
    """`hetc simulate --json`: the simulated rate and each stage's visits per request."""
    stage_node = {s["id"]: s["node"] for s in plan["stages"]}
    obs = Observations(source=path, requests_per_s=doc.get("rate_rps"))
    for row in doc["stages"]:
        stage = str(row.get("id"))
        if stage not in stage_node:
            raise _fail(path, 0, "stages[].id", f"stage {printable(stage)} is not in the plan")
        visits = row.get("visits_per_request")
        if not isinstance(visits, (int, float)) or math.isnan(visits) or visits < 0:
            raise _fail(path, 0, f"stages[{stage}].visits_per_request", "expected a number >= 0")
        obs.node(stage_node[stage]).visits = float(visits)
    return obs


# ------------------------------------------------------------------------------------- interpretation


@dataclass
class _Histogram:
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (le, cumulative count)
    sum: float = 0.0
    count: float = 0.0
    line: int = 0

    def mean(self) -> float | None:
        return self.sum / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile (conservative, as a planner wants)."""
        total = self.count or (self.buckets[-1][1] if self.buckets else 0)
        for le, cumulative in self.buckets:
            if cumulative >= q * total and math.isfinite(le):
                return le
        return None


class _Metrics:
    """Samples grouped by metric family and target (a node), checked as they are grouped."""

    def __init__(self, samples: list[_Sample], plan: dict[str, Any], path: str):
        self.path = path
        self.plan = plan
        self.stage_node = {s["id"]: s["node"] for s in plan["stages"]}
        self.nodes = set(self.stage_node.values())
        self.model_node = _model_names(plan)
        self.histograms: dict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self.values: dict[tuple[str, str], float] = defaultdict(float)
        for s in samples:
            self._add(s)
        for (name, target), hist in self.histograms.items():
            hist.buckets.sort()
            counts = [c for _, c in hist.buckets]
            if any(b < a for a, b in zip(counts, counts[1:], strict=False)):
                raise _fail(path, hist.line, f"{name}_bucket", f"buckets of {printable(target)} are not monotonic: "
                            "a cumulative bucket count falls as `le` grows")

    def _target(self, s: _Sample) -> str | None:
        if s.name.startswith("hetc_") and "stage" in s.labels:
            stage = s.labels["stage"]
            if stage in self.stage_node:
                return self.stage_node[stage]
            if stage in self.nodes:
                return stage
            raise _fail(self.path, s.line, s.name, f"stage {printable(stage)!s} is not in the plan")
        if s.name.startswith("vllm:") and "model_name" in s.labels:
            model = s.labels["model_name"]
            if model not in self.model_node:
                raise _fail(self.path, s.line, s.name, f"model {printable(model)!s} is not served by any LLM "
                            f"stage of the plan (known: {', '.join(sorted(self.model_node))})")
            return self.model_node[model]
        return ""  # agent-wide (hetc_requests_total) or unlabelled

    def _add(self, s: _Sample) -> None:
        if s.value < 0 and not s.name.endswith("_sum"):
            raise _fail(self.path, s.line, s.name, f"negative count {s.value:g}")
        target = self._target(s)
        for suffix in ("_bucket", "_sum", "_count"):
            if s.name.endswith(suffix):
                hist = self.histograms[(s.name[: -len(suffix)], target)]
                hist.line = hist.line or s.line
                if suffix == "_bucket":
                    if "le" not in s.labels:
                        raise _fail(self.path, s.line, s.name, "a histogram bucket without an `le` label")
                    hist.buckets.append((_number(s.labels["le"], self.path, s.line, s.name), s.value))
                elif suffix == "_sum":
                    hist.sum += s.value
                else:
                    hist.count += s.value
                return
        self.values[(s.name, target)] += s.value

    def targets(self, family: str) -> dict[str, _Histogram]:
        return {t: h for (name, t), h in self.histograms.items() if name == family and t}


def _model_names(plan: dict[str, Any]) -> dict[str, str]:
    """Every name a vLLM server of an LLM stage may report as `model_name` -> the LLM node."""
    from hetc.model.models import hf_repo

    names: dict[str, str] = {}
    for stage in plan["stages"]:
        model = stage.get("model")
        if stage["kind"] in ("prefill", "decode", "llm") and model:
            for name in (hf_repo(model["name"]), model["name"], model["id"], stage["node"]):
                if name:
                    names.setdefault(name, stage["node"])
    return names


def _interpret(samples: list[_Sample], window_s: float | None, plan: dict[str, Any], path: str) -> Observations:
    metrics = _Metrics(samples, plan, path)
    obs = Observations(source=path)
    for family, attr in (("vllm:request_prompt_tokens", "input_tokens"),
                         ("vllm:request_generation_tokens", "output_tokens")):
        for node, hist in metrics.targets(family).items():
            setattr(obs.node(node), attr, hist.mean())
    for node, hist in metrics.targets("vllm:e2e_request_latency_seconds").items():
        _token_totals(obs, metrics, node, hist.count)
        if window_s:
            obs.node(node).calls_per_s = hist.count / window_s
    for family, attr in (("vllm:time_to_first_token_seconds", "ttft_p99_ms"),
                         ("vllm:time_per_output_token_seconds", "tbt_p99_ms"),
                         ("vllm:inter_token_latency_seconds", "tbt_p99_ms")):
        for node, hist in metrics.targets(family).items():
            p99 = hist.quantile(0.99)
            if p99 is not None:
                setattr(obs.node(node), attr, p99 * 1e3)
    for node, hist in metrics.targets("hetc_stage_visits_per_request").items():
        obs.node(node).visits = hist.mean()
    tool_nodes = {s["node"] for s in plan["stages"] if s["kind"].startswith("tool")}
    for node, hist in metrics.targets("hetc_stage_seconds").items():
        if node in tool_nodes and hist.mean() is not None:
            obs.node(node).latency_ms = hist.mean() * 1e3
            p99 = hist.quantile(0.99)
            obs.node(node).latency_p99_ms = None if p99 is None else max(p99 * 1e3, obs.node(node).latency_ms)
    for (name, target), value in metrics.values.items():
        if name == "hetc_stage_queue" and target:
            obs.queue[target] = obs.queue.get(target, 0.0) + value
        elif name == "vllm:num_requests_waiting" and target:
            obs.node(target).waiting = (obs.node(target).waiting or 0.0) + value
    requests = sum(v for (name, _), v in metrics.values.items() if name == "hetc_requests_total")
    if requests and window_s:
        obs.requests_per_s = requests / window_s
    elif requests:
        raise HetcError("hetc_requests_total is a cumulative counter: give --window SECONDS, the time it counted "
                        "over (or export a query_range, whose range is the window)", Loc(path))
    return obs


def observed_text(obs: Observations, slo: dict[str, Any]) -> str:
    """What the observations say about latency and queues (not fed to the planner: the SLO is the user's)."""
    lines = []
    for name in sorted(set(obs.nodes) | set(obs.queue)):
        seen = obs.nodes.get(name, NodeObservation())
        parts = [f"TTFT p99 <= {seen.ttft_p99_ms:g} ms (SLO {slo.get('ttft_ms') or '-'})"
                 if seen.ttft_p99_ms is not None else "",
                 f"TBT p99 <= {seen.tbt_p99_ms:g} ms (SLO {slo.get('tbt_ms') or '-'})"
                 if seen.tbt_p99_ms is not None else "",
                 f"{seen.waiting:g} waiting" if seen.waiting else "",
                 f"{obs.queue[name]:g} in the router's queue" if obs.queue.get(name) else ""]
        if any(parts):
            lines.append(f"  {printable(name)}: " + ", ".join(p for p in parts if p))
    return "observed:\n" + "\n".join(lines) + "\n" if lines else ""


def _token_totals(obs: Observations, metrics: _Metrics, node: str, calls: float) -> None:
    """Mean tokens per call from vllm:prompt_tokens_total / generation_tokens_total where no histogram was."""
    for name, attr in (("vllm:prompt_tokens_total", "input_tokens"), ("vllm:generation_tokens_total", "output_tokens")):
        total = metrics.values.get((name, node))
        if total is not None and calls > 0 and getattr(obs.node(node), attr) is None:
            setattr(obs.node(node), attr, total / calls)
