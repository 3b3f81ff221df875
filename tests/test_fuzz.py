"""Property-based fuzzing of the spec loader and the compiler (hypothesis).

Valid specs: random agent graphs (DAGs of every node kind, bounded loops closed by edges with
max_iterations, conditional branches, inline sub-agents) over the model presets, written as YAML. Each
one compiles, or fails with exit code 3 and a reason (an SLA or a memory limit the random numbers cannot
meet). Invalid specs: a valid spec mutated in one way that docs/spec.md forbids (wrong type, missing
key, unbounded cycle, unknown id, number beyond its limit, unicode key, empty file, non-YAML, alias bomb,
deep nesting, ...). Each one fails with exit code 2 and only located `file:line:col: error:` messages.
Nothing ever exits 1 (hetc's "internal error") or raises.

bench/fuzz_long.py runs the same properties with many more examples.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from hetc.cli import main
from hetc.errors import EXIT_INFEASIBLE, EXIT_USER, HetcError

# Example counts for CI (bench/fuzz_long.py raises them through HETC_FUZZ_SCALE).
SCALE = float(os.environ.get("HETC_FUZZ_SCALE", "1"))
VALID_NO_CODEGEN_EXAMPLES = int(100 * SCALE)
VALID_CLI_EXAMPLES = int(15 * SCALE)
INVALID_EXAMPLES_PER_MUTATION = int(8 * SCALE)  # x 30 mutations
# Derandomized in CI (the same examples every run); bench/fuzz_long.py sets HETC_FUZZ_RANDOM=1. No "explain"
# phase: it re-runs a failing compile hundreds of times for little extra insight. HETC_FUZZ_SHRINK=0 reports
# failures unshrunk (shrinking a failing compile can take minutes).
FUZZ_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                           HealthCheck.filter_too_much],
                     derandomize=os.environ.get("HETC_FUZZ_RANDOM") != "1", database=None,
                     phases=[Phase.explicit, Phase.reuse, Phase.generate]
                     + ([] if os.environ.get("HETC_FUZZ_SHRINK") == "0" else [Phase.shrink]))

# ------------------------------------------------------------------------------------------ the graph model

# Presets by model kind (hetc.model.models.PRESETS) with the context window that bounds token counts.
DECODERS = {"llama-3-8b": 8192, "llama-3-70b": 8192, "mixtral-8x7b": 32768}
ENCODER_DECODER = {"whisper-large-v3": 448}
ENCODERS = {"bge-large-en-v1.5": 512}
TTS = {"kokoro-82m": 512}
# Set to True to step around the bugs this generator once found (fp32 models, model id == spec name, graphs
# without work, sm_86/sm_89 code generation, CPU-only pools, plan_as_unit edge cases); all are fixed.
AVOID_KNOWN_BUGS = False
PRECISIONS = ("bf16", "fp16", "fp8", "int8") if AVOID_KNOWN_BUGS else ("fp32", "bf16", "fp16", "fp8", "int8")
DEVICES = ("intel-xeon-8480", "amd-epyc-9654", "nvidia-a100-80gb", "nvidia-h100-sxm", "nvidia-h200",
           "nvidia-b200", "amd-mi300x", "intel-gaudi2", "intel-gaudi3") + (() if AVOID_KNOWN_BUGS else ("nvidia-l40s",))
CPUS = {"intel-xeon-8480", "amd-epyc-9654"}
NO_CLOUD_PRICE = {"amd-epyc-9654", "intel-gaudi3"}  # hetc/hwdb/*.yaml without cloud_usd_per_hour
PAYLOADS = ("text", "tokens", "audio", "embedding", "documents", "json")
# What a node hands on (its agent op's result type, hetc/dialects/agent/); others depend on their inputs (compute, agent).
RESULT_PAYLOAD = {"llm": "text", "speech_to_text": "text", "text_to_speech": "audio", "embedding": "embedding",
                  "kv_cache": "kv", "tool": "documents", "memory_lookup": "documents", "memory_store": "json"}
# The payloads each node kind takes (hetc/dialects/agent/ ACCEPTED_INPUTS); other kinds take any.
_TEXTUAL = ("text", "tokens", "documents", "json", "embedding")
ACCEPTS = {"llm": _TEXTUAL + ("kv",), "speech_to_text": ("audio",), "text_to_speech": ("text", "tokens", "json"),
           "embedding": ("text", "tokens", "documents", "json"), "memory_lookup": _TEXTUAL}
MID_KINDS = ("llm", "speech_to_text", "text_to_speech", "embedding", "model", "kv_cache", "tool", "memory_lookup",
             "memory_store", "compute", "agent")
COMPUTE_OPS = ("none", "add", "mul", "relu", "gelu", "silu", "rmsnorm", "softmax", "top_k", "top_p",
               "l2_normalize", "mean_pool", "dot", "cosine", "quantize_fp8", "quantize_int8")

# Ids: plain ones most of the time, sometimes any unicode text a node id may be (docs/spec.md "Ids").
_PLAIN_ID = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_ANY_ID = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: "->" not in s and s == s.strip() and s.strip())
IDS = st.one_of(_PLAIN_ID, _PLAIN_ID, _PLAIN_ID, _ANY_ID)
FREE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(str.strip)


@dataclass
class Graph:
    """A spec graph being generated: node id -> mapping, edges in file order."""

    nodes: dict[str, dict] = field(default_factory=dict)
    edges: list[tuple[str, str, dict]] = field(default_factory=list)
    result_payload: str = "json"  # what the first output receives (a nested agent's result)

    def edge_items(self) -> list:
        return [f"{s} -> {d}" if not attrs else {f"{s} -> {d}": attrs} for s, d, attrs in self.edges]


def _unique_ids(draw, count: int, taken: set[str]) -> list[str]:
    out = []
    for _ in range(count):
        ident = draw(IDS)
        if ident in taken:  # a suffix instead of a filter: hypothesis shrinks every id towards the same text
            ident = f"{ident}_{len(taken)}"
        taken.add(ident)
        out.append(ident)
    return out


def _tokens(draw, hi: int, lo: int = 1) -> int:
    return draw(st.integers(lo, hi))


def _node(draw, kind: str, models: dict[str, str], in_payload: str, depth: int) -> tuple[dict, str]:
    """Fields of one node of `kind` and the payload it produces; `models` maps model id -> preset (filled
    in as needed); `in_payload` is what its first incoming edge brings."""

    def model_of(presets: dict[str, int]) -> tuple[str, int]:
        preset = draw(st.sampled_from(sorted(presets)))
        mine = [m for m, p in models.items() if p == preset]
        model_id = mine[0] if mine else _unique_ids(draw, 1, set(models))[0]
        models[model_id] = preset
        return model_id, presets[preset]

    node: dict = {"kind": kind}
    if draw(st.booleans()):
        node["description"] = draw(FREE_TEXT)
    if kind == "llm":
        model, ctx = model_of(DECODERS)
        node.update(model=model, input_tokens=_tokens(draw, 4096), output_tokens=_tokens(draw, 1024))
    elif kind == "speech_to_text":
        model, ctx = model_of(ENCODER_DECODER)
        node.update(model=model, audio_seconds=draw(st.floats(0.5, 120)), output_tokens=_tokens(draw, 400))
    elif kind == "text_to_speech":
        model, ctx = model_of(TTS)
        node.update(model=model, input_tokens=_tokens(draw, 500), audio_seconds=draw(st.floats(0.5, 120)))
    elif kind == "embedding":
        model, ctx = model_of(ENCODERS)
        node.update(model=model, tokens=_tokens(draw, ctx))
    elif kind == "model":
        model, ctx = model_of(draw(st.sampled_from([DECODERS, ENCODER_DECODER, ENCODERS, TTS])))
        encoder = models[model] in ENCODERS
        node.update(model=model, input_tokens=_tokens(draw, 200),
                    output_tokens=0 if encoder else _tokens(draw, 200, lo=0))
    elif kind == "kv_cache":
        model, ctx = model_of(draw(st.sampled_from([DECODERS, ENCODER_DECODER])))
        node.update(model=model, tokens=_tokens(draw, min(ctx, 4096)),
                    placement=draw(st.sampled_from(["local", "remote", "disaggregated"])))
    elif kind == "tool":
        latency = draw(st.floats(0.1, 5000))
        node.update(tool=draw(FREE_TEXT.filter(str.strip)), latency_ms=latency,
                    latency_p99_ms=latency * draw(st.floats(1, 4)), compute_ms=draw(st.floats(0, 50)),
                    request_kb=draw(st.floats(0, 1000)), response_kb=draw(st.floats(0, 1000)))
    elif kind in ("memory_lookup", "memory_store"):
        if draw(st.booleans()):
            node["embed_model"], _ = model_of(ENCODERS)
        else:
            node["dim"] = draw(st.integers(1, 4096))
        if kind == "memory_lookup":
            n = draw(st.integers(1, 10_000_000))
            node.update(n_vectors=n, top_k=draw(st.integers(1, min(n, 100))),
                        index=draw(st.sampled_from(["flat", "hnsw"])),
                        precision=draw(st.sampled_from(PRECISIONS)))
            if draw(st.booleans()):
                node["rerank_model"], _ = model_of(draw(st.sampled_from([DECODERS, ENCODERS])))
        else:
            node.update(n_vectors=draw(st.integers(1, 100)), latency_ms=draw(st.floats(0, 50)))
    elif kind == "compute":
        node.update(cpu_ms=draw(st.floats(0.01, 200)), op=draw(st.sampled_from(COMPUTE_OPS)))
    elif kind == "agent":
        sub = _graph(draw, models, in_payloads=[in_payload], depth=depth + 1, max_mid=3)
        node["graph"] = {"nodes": sub.nodes, "edges": sub.edge_items()}
        runs_a_model = any("model" in n or "embed_model" in n for n in sub.nodes.values())
        if draw(st.booleans()) and (not AVOID_KNOWN_BUGS or (runs_a_model and not _UNITS)):
            node["plan_as_unit"] = True
            _UNITS.append(node)
        return node, sub.result_payload
    if kind == "compute":
        return node, in_payload
    if kind == "model":
        return node, "text" if node["output_tokens"] > 0 else "embedding"
    return node, RESULT_PAYLOAD[kind]


def _input_node(draw, produces: str) -> dict:
    node: dict = {"kind": "input", "produces": produces}
    if produces == "audio":
        node["audio_seconds"] = draw(st.floats(0.5, 300))
    elif produces == "embedding":
        node["dim"] = draw(st.integers(1, 4096))
    else:
        node["tokens"] = _tokens(draw, 8192)
    return node


def _graph(draw, models: dict[str, str], in_payloads: list[str] | None = None, depth: int = 0,
           max_mid: int = 7) -> Graph:
    """A random graph: inputs, mid nodes in topological order, outputs; forward edges so that every node is
    reached from an input and reaches an output; back edges with max_iterations; branches. Every edge
    carries a payload its target accepts (hetc/dialects/agent/ ACCEPTED_INPUTS)."""
    g = Graph()
    taken: set[str] = set()
    payloads = in_payloads or draw(st.lists(st.sampled_from(PAYLOADS), min_size=1, max_size=2))
    inputs = _unique_ids(draw, len(payloads), taken)
    kinds = draw(st.lists(st.sampled_from(MID_KINDS if depth == 0 else MID_KINDS[:-1]), min_size=1,
                          max_size=max_mid))
    if AVOID_KNOWN_BUGS and depth == 0 and set(kinds) <= {"kv_cache", "agent"}:
        kinds.append("tool")  # a graph with no placeable op: "placement problem has no ops" (exit 1)
    mids = _unique_ids(draw, len(kinds), taken)
    outputs = _unique_ids(draw, draw(st.integers(1, 2)), taken)
    for ident, produces in zip(inputs, payloads, strict=True):
        g.nodes[ident] = _input_node(draw, produces)
    payload_of = dict(zip(inputs, payloads, strict=True))
    kind_of: dict[str, str] = {}
    order = inputs + mids
    edges: dict[tuple[str, str], dict] = {}

    def accepts(dst: str, src: str) -> bool:
        return dst in outputs or payload_of[src] in ACCEPTS.get(kind_of[dst], PAYLOADS + ("kv",))

    for i, (ident, kind) in enumerate(zip(mids, kinds, strict=True)):
        earlier = order[: len(inputs) + i]
        kind_of[ident] = kind
        if kind == "agent":  # one incoming edge; the sub-graph's input produces what it brings
            earlier = [n for n in earlier if payload_of[n] in PAYLOADS]
        earlier = [n for n in earlier if accepts(ident, n)]
        if not earlier:  # nothing upstream produces what this kind takes
            kind = kind_of[ident] = "compute"
            earlier = order[: len(inputs) + i]
        src = draw(st.sampled_from(earlier))
        edges[(src, ident)] = {}  # the first edge into a node: a compute node passes its payload on
        node, payload_of[ident] = _node(draw, kind, models, payload_of[src], depth)
        g.nodes[ident] = node
    for ident in outputs:
        g.nodes[ident] = {"kind": "output"}
    agents = {m for m in mids if kind_of[m] == "agent"}

    def later_targets(i: int, src: str) -> list[str]:
        later = mids[max(0, i - len(inputs) + 1):]
        return [n for n in later if n not in agents and accepts(n, src)] + outputs

    for i, ident in enumerate(order):  # every input and mid node reaches a later node or an output
        if not any(s == ident for s, _ in edges):
            edges[(ident, draw(st.sampled_from(later_targets(i, ident))))] = {}
    for ident in outputs:
        if not any(d == ident for _, d in edges):
            edges[(draw(st.sampled_from(order)), ident)] = {}
    for _ in range(draw(st.integers(0, len(order)))):  # extra forward edges (never into an agent)
        i = draw(st.integers(0, len(order) - 1))
        edges.setdefault((order[i], draw(st.sampled_from(later_targets(i, order[i])))), {})
    # bounded loops: a back edge j -> i closes a cycle when i reaches j through the forward edges
    reach = _reachability(mids, edges)
    back_candidates = [(j, i) for i in mids for j in mids if j in reach[i] and i not in agents
                       and (j, i) not in edges and accepts(i, j)]
    for src, dst in draw(st.lists(st.sampled_from(back_candidates), max_size=2, unique=True)
                         if back_candidates else st.just([])):
        edges[(src, dst)] = {"max_iterations": draw(st.integers(1, 5))}
    # branches: some edges out of a node get probabilities summing to at most 1 (multiples of 1/8: exact)
    for ident in order:
        out = [key for key in edges if key[0] == ident]
        if len(out) > 1 and draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(out), min_size=1, max_size=len(out), unique=True))
            budget = 8
            for key in chosen:
                eighths = draw(st.integers(1, max(1, budget - (len(chosen) - 1))))
                if budget - eighths < 0:
                    break
                budget -= eighths
                edges[key]["probability"] = eighths / 8
    g.edges = [(s, d, attrs) for (s, d), attrs in edges.items()]
    first_into_output = next(s for s, d in edges if d == outputs[0])
    g.result_payload = payload_of[first_into_output]
    return g


def _reachability(mids: list[str], edges: dict) -> dict[str, set[str]]:
    succ: dict[str, set[str]] = {m: set() for m in mids}
    for s, d in edges:
        if s in succ and d in succ:
            succ[s].add(d)
    reach = {}
    for m in mids:
        seen, stack = {m}, [m]
        while stack:
            for n in succ[stack.pop()]:
                if n not in seen:
                    seen.add(n)
                    stack.append(n)
        reach[m] = seen
    return reach


_UNITS: list[dict] = []  # the sub-agents marked plan_as_unit in the spec being drawn


@st.composite
def valid_specs(draw, max_mid: int = 7) -> dict:
    _UNITS.clear()
    models: dict[str, str] = {}
    graph = _graph(draw, models, max_mid=max_mid)
    name = _unique_ids(draw, 1, set(models) if AVOID_KNOWN_BUGS else set())[0]
    spec: dict = {"hetc": 1, "name": name}
    if draw(st.booleans()):
        spec["description"] = draw(FREE_TEXT)
    slo: dict = {}
    if draw(st.booleans()):  # mostly generous, sometimes tight enough to be infeasible (exit 3)
        slo["latency_ms"] = {"p99": draw(st.sampled_from([1e4, 6e4, 6e5, 3.6e6, 5e7]))}
    if draw(st.booleans()):
        slo["ttft_ms"] = draw(st.sampled_from([50, 500, 5000]))
    if draw(st.booleans()):
        slo["tbt_ms"] = draw(st.sampled_from([5, 30, 200]))
    if slo:
        spec["slo"] = slo
    spec["traffic"] = draw(st.one_of(st.builds(lambda r: {"requests_per_s": r}, st.floats(0.01, 200)),
                                     st.builds(lambda n, h: {"objective": "tokens_per_dollar", "requests": n,
                                                             "deadline_h": h}, st.integers(1, 10**6),
                                               st.sampled_from([0.5, 8, 24]))))
    spec["models"] = {m: {"preset": p, "precision": draw(st.sampled_from(PRECISIONS))} for m, p in models.items()}
    spec["nodes"] = graph.nodes
    spec["edges"] = graph.edge_items()
    hardware: dict = {}
    if draw(st.booleans()):
        pool = draw(st.lists(st.sampled_from(DEVICES), min_size=1, max_size=5, unique=True))
        if AVOID_KNOWN_BUGS and set(pool) <= CPUS:
            pool.append("nvidia-h100-sxm")
        hardware["pool"] = pool
        if draw(st.booleans()):
            hardware["inventory"] = {pool[0]: {"count": draw(st.integers(0, 64)), "sunk": draw(st.booleans())}}
    if draw(st.booleans()):
        hardware["pricing"] = draw(st.sampled_from(["ownership", "cloud"]))
        if hardware["pricing"] == "cloud" and set(hardware.get("pool", DEVICES)) <= NO_CLOUD_PRICE:
            hardware["pool"].append("nvidia-h100-sxm")  # else a located user error: nothing has a cloud price
    if hardware:
        spec["hardware"] = hardware
    return spec


def to_yaml(spec) -> str:
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=1000)


# ------------------------------------------------------------------------------------------ running hetc


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_located(err: str, path: Path, whole_file: bool = False) -> None:
    """Every line of stderr is a located diagnostic in the spec file: `file:line:col: error: message`
    (`file: error: message` for what concerns the whole file, such as its size)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no diagnostic printed"
    where = r"(:[1-9]\d*:[1-9]\d*)?" if whole_file else r":[1-9]\d*:[1-9]\d*"
    pattern = re.compile(rf"{re.escape(str(path))}{where}: error: \S")
    for line in lines:
        assert pattern.match(line), f"not a located diagnostic: {line!r}"


def assert_feasible_or_reasoned(err: str, code: int, path: Path) -> None:
    assert code in (0, EXIT_INFEASIBLE), f"exit {code}:\n{err}"
    if code == EXIT_INFEASIBLE:
        assert ": error: " in err and str(path) in err, err


# ------------------------------------------------------------------------------------------ valid specs


@settings(max_examples=VALID_NO_CODEGEN_EXAMPLES, **FUZZ_SETTINGS)
@given(spec=valid_specs())
def test_valid_specs_compile_or_are_infeasible(spec):
    """In process, exact solver, no code generation: every stage up to plan, deploy and report; then a short
    simulation of the plan."""
    from hetc.compiler import CompileOptions, compile_spec

    text = to_yaml(spec)
    note(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            result = compile_spec(str(path), CompileOptions(solver="exact", codegen=False))
        except HetcError as exc:
            assert exc.exit_code == EXIT_INFEASIBLE, str(exc)
            assert exc.diagnostics and all(d.message for d in exc.diagnostics)
            event("infeasible (exit 3)")
            return
        event("compiled")
        plan = result.plan
        assert plan is not None and plan["stages"], "a feasible plan has stages"
        json.dumps(plan, allow_nan=False)
        placed = any(s["tco"]["devices"] for s in plan["stages"])  # a graph of kv_cache nodes alone runs nothing
        assert (plan["tco"]["usd_per_hour"] > 0) == placed and math.isfinite(plan["tco"]["usd_per_hour"])
        assert all(p["meets"] for p in plan["paths"])
        # the simulator runs the plan to the end: every request completes (no crash, no token left waiting)
        from hetc.study.simulate import simulate

        rate = plan["traffic"]["requests_per_s"] or 1.0
        try:
            report = simulate(plan, rate_rps=rate, duration_s=20 / rate, seed=0)
        except HetcError as exc:
            # a known limit, refused with the reason: branches of different nodes folded onto one stage through
            # a pass-through node need not be exclusive, and the simulator draws a stage's branches as one choice
            assert "branch probabilities leaving stage" in str(exc), str(exc)
            event("simulation refused: branch probabilities > 1")
            return
        # every request completes, whatever the loops (hetc/loops.py), and is visited as the plan expects
        assert report["completed"] == report["requests"] and report["dropped"]["count"] == 0


@settings(max_examples=VALID_CLI_EXAMPLES, **FUZZ_SETTINGS)
@given(spec=valid_specs(max_mid=4))
def test_valid_specs_through_the_cli_with_codegen(spec):
    if AVOID_KNOWN_BUGS:
        spec.setdefault("hardware", {}).setdefault("pool", list(DEVICES))
    text = to_yaml(spec)
    note(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        out = Path(tmp) / "bundle"
        code, _, err = run_cli(["compile", path, "-o", out, "-q", "--solver", "exact"])
        event(f"exit {code}")
        assert_feasible_or_reasoned(err, code, path)
        if code == 0:
            manifest = json.loads((out / "manifest.json").read_text())
            listed = {f["path"] for f in manifest["files"]}
            assert listed == {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
        else:
            assert not out.exists()


# ------------------------------------------------------------------------------------------ invalid specs

# Numeric fields per node kind that must be positive numbers (docs/spec.md) and their limits.
POSITIVE_FIELDS = {"llm": ("input_tokens", "output_tokens"), "tool": ("latency_ms",), "compute": ("cpu_ms",),
                   "embedding": ("tokens",), "memory_lookup": ("n_vectors", "top_k"),
                   "text_to_speech": ("input_tokens", "audio_seconds"), "kv_cache": ("tokens",),
                   "speech_to_text": ("audio_seconds", "output_tokens")}
BAD_NUMBERS = ["300ms", "abc", [], {"a": 1}, True, None, -5, 0, 1e300, 10**30, ".nan", ".inf", "-.inf", "1e999",
               "0x"]
ALIAS_BOMB = "\n".join(
    ["hetc: 1", "name: bomb", "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]) + "\n"


def _yaml_scalar(value) -> str:
    if isinstance(value, str) and value.startswith((".", "-.")):
        return value  # YAML's own spelling of nan / inf
    return json.dumps(value)


def _first(spec: dict, kinds) -> tuple[str, dict] | None:
    return next(((k, n) for k, n in spec["nodes"].items() if n["kind"] in kinds), None)


MUTATIONS = (
    "wrong_number", "missing_top_key", "missing_node_key", "unbounded_cycle", "unknown_edge_end", "unknown_model",
    "unknown_device", "unknown_key", "bad_kind", "bad_version", "edges_not_list", "nodes_not_mapping",
    "probability_sum", "probability_range", "max_iterations_without_cycle", "edge_into_input", "arrow_in_id",
    "whitespace_id", "duplicate_key", "tag", "empty", "not_yaml", "bad_utf8", "alias_bomb", "deep_nesting",
    "multi_document", "top_not_mapping", "huge_rate", "context_overflow", "too_big_file")


@st.composite
def invalid_specs(draw, kind: str) -> tuple[str, str]:
    """(mutation, file text): a valid spec broken by one mutation of `kind` that docs/spec.md forbids."""
    spec = draw(valid_specs(max_mid=5))
    if kind == "wrong_number":
        target = _first(spec, POSITIVE_FIELDS)
        if target is None:
            kind = "huge_rate"
        else:
            node_id, node = target
            key = draw(st.sampled_from(POSITIVE_FIELDS[node["kind"]]))
            value = draw(st.sampled_from(BAD_NUMBERS))
            node[key] = "__BAD__"
            text = re.sub(r"'?__BAD__'?", lambda _: _yaml_scalar(value), to_yaml(spec))
            return f"{kind}:{node['kind']}.{key}={value!r}", text
    if kind == "huge_rate":
        spec["traffic"] = {"requests_per_s": draw(st.sampled_from([2e9, -1, 0, 1e308]))}
    elif kind == "missing_top_key":
        del spec[draw(st.sampled_from(["hetc", "name", "traffic", "nodes", "edges"]))]
    elif kind == "missing_node_key":
        target = _first(spec, ("llm", "tool", "compute", "memory_lookup", "embedding"))
        if target is None:
            node = spec["nodes"][draw(st.sampled_from(sorted(spec["nodes"])))]
            del node["kind"]
        else:
            node = target[1]
            required = {"llm": "model", "tool": "latency_ms", "compute": "cpu_ms", "memory_lookup": "n_vectors",
                        "embedding": "model"}[node["kind"]]
            del node[draw(st.sampled_from([required, "kind"]))]
    elif kind == "unbounded_cycle":
        bounded = [e for e in spec["edges"] if isinstance(e, dict)
                   and "max_iterations" in next(iter(e.values()))]
        if bounded:
            attrs = next(iter(bounded[0].values()))
            del attrs["max_iterations"]
        else:  # a two-node cycle between two new compute nodes
            spec["nodes"]["cyc_a"] = {"kind": "compute", "cpu_ms": 1}
            spec["nodes"]["cyc_b"] = {"kind": "compute", "cpu_ms": 1}
            first_input = next(k for k, n in spec["nodes"].items() if n["kind"] == "input")
            first_output = next(k for k, n in spec["nodes"].items() if n["kind"] == "output")
            spec["edges"] += [f"{first_input} -> cyc_a -> cyc_b -> cyc_a", f"cyc_b -> {first_output}"]
    elif kind == "unknown_edge_end":
        a = draw(st.sampled_from(sorted(spec["nodes"])))
        spec["edges"].append(f"{a} -> {draw(IDS.filter(lambda s: s not in spec['nodes']))}")
    elif kind == "unknown_model":
        target = _first(spec, ("llm", "embedding", "speech_to_text", "text_to_speech", "model", "kv_cache"))
        if target is None:
            spec["models"]["m"] = {"preset": draw(st.sampled_from(["gpt-5", "llama-9", "ünï"]))}
        else:
            target[1]["model"] = draw(IDS.filter(lambda s: s not in spec["models"]))
    elif kind == "unknown_device":
        spec["hardware"] = {"pool": ["nvidia-h100-sxm", draw(st.sampled_from(["nvidia-h900", "tpu-v9", "ꙮ"]))]}
    elif kind == "unknown_key":
        where = draw(st.sampled_from(["top", "node", "slo", "traffic"]))
        key = draw(st.sampled_from(["latncy_ms", "ñame", "描述", "x y", "kind2"]))
        if where == "top":
            spec[key] = 1
        elif where == "node":
            spec["nodes"][draw(st.sampled_from(sorted(spec["nodes"])))][key] = 1
        else:
            spec.setdefault(where, {})[key] = 1
    elif kind == "bad_kind":
        spec["nodes"][draw(st.sampled_from(sorted(spec["nodes"])))]["kind"] = draw(
            st.sampled_from(["lm", "LLM", "tööl", "", None, 3, ["llm"]]))
    elif kind == "bad_version":
        spec["hetc"] = draw(st.sampled_from([0, 2, "1", 1.5, None, "one", [1]]))
    elif kind == "edges_not_list":
        spec["edges"] = draw(st.sampled_from([{"a": "b"}, "a -> b", 3, None]))
    elif kind == "nodes_not_mapping":
        spec["nodes"] = draw(st.sampled_from([["a", "b"], "a", 3, None, {}]))
    elif kind == "probability_sum":
        src = next(k for k, n in spec["nodes"].items() if n["kind"] == "input")
        outs = [e for e in spec["edges"] if isinstance(e, str) and e.startswith(f"{src} -> ")]
        extra = [k for k, n in spec["nodes"].items() if n["kind"] == "output"]
        spec["edges"] = [e for e in spec["edges"] if e not in outs]
        spec["edges"] += [{e: {"probability": 0.75}} for e in outs]
        spec["edges"] += [{f"{src} -> {o}": {"probability": 0.75}} for o in extra
                          if f"{src} -> {o}" not in outs]
        if len(outs) + len([o for o in extra if f"{src} -> {o}" not in outs]) < 2:
            kind = "probability_range"
    elif kind == "edge_into_input":
        src = next(k for k, n in spec["nodes"].items() if n["kind"] not in ("input", "output"))
        dst = next(k for k, n in spec["nodes"].items() if n["kind"] == "input")
        spec["edges"].append({f"{src} -> {dst}": {"max_iterations": 2}})
    elif kind == "max_iterations_without_cycle":
        src = next(k for k, n in spec["nodes"].items() if n["kind"] == "input")
        dst = next(k for k, n in spec["nodes"].items() if n["kind"] == "output")
        spec["edges"] = [e for e in spec["edges"] if e != f"{src} -> {dst}" and
                         not (isinstance(e, dict) and f"{src} -> {dst}" in e)]
        spec["edges"].append({f"{src} -> {dst}": {"max_iterations": 3}})
    elif kind == "arrow_in_id":
        spec["nodes"]["a->b"] = {"kind": "output"}
    elif kind == "whitespace_id":
        spec["nodes"][draw(st.sampled_from([" lead", "trail ", "\u3000wide"]))] = {"kind": "output"}
    elif kind == "context_overflow":
        target = _first(spec, ("llm",))
        if target is None:
            spec["nodes"]["big"] = {"kind": "embedding", "model": "bge_fuzz", "tokens": 513}
            spec["models"]["bge_fuzz"] = {"preset": "bge-large-en-v1.5"}
        else:
            target[1]["input_tokens"] = 40000
    if kind == "probability_range":
        edge = spec["edges"][0]
        key = edge if isinstance(edge, str) else next(iter(edge))
        spec["edges"][0] = {key: {"probability": draw(st.sampled_from([0, 1.5, -0.2, "half"]))}}
    text = to_yaml(spec)
    if kind == "duplicate_key":
        text = text.replace("hetc: 1\n", "hetc: 1\nhetc: 1\n", 1)
    elif kind == "tag":
        text = text.replace("hetc: 1\n", draw(st.sampled_from(
            ["hetc: !!python/object:os.system 1\n", "hetc: !custom 1\n", "hetc: 1\nx: !!binary aGk=\n",
             "hetc: 1\nname2: !!python/name:os.system ''\n"])), 1)
    elif kind == "empty":
        text = draw(st.sampled_from(["", "\n\n", "# only a comment\n", "---\n", "~\n", "null\n"]))
    elif kind == "not_yaml":
        text = draw(st.sampled_from(["{{{", "a: [1, 2\n", "\tkey: value\n", "key: 'open\n", "- a\nb: c\n",
                                     text[: len(text) // 2] + "\n  : : [\n", "@@@\n", "a: b: c\n"]))
    elif kind == "bad_utf8":
        return kind, text.replace("hetc: 1", "hetc: 1\nname2: \udcff", 1)
    elif kind == "alias_bomb":
        text = ALIAS_BOMB
    elif kind == "deep_nesting":
        depth = draw(st.integers(70, 3000))
        nested = draw(st.sampled_from(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth]))
        text = text.replace("hetc: 1\n", f"hetc: 1\nnotes: {nested}\n", 1)
    elif kind == "multi_document":
        text = text + "---\n" + text
    elif kind == "top_not_mapping":
        text = draw(st.sampled_from(["- hetc: 1\n", "42\n", "just a string\n", "[1, 2]\n"]))
    return kind, text  # too_big_file: the test pads the text (keeps hypothesis's reports short)


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_invalid_specs_fail_with_located_errors(mutation):
    @settings(max_examples=INVALID_EXAMPLES_PER_MUTATION, **FUZZ_SETTINGS)
    @given(case=invalid_specs(mutation))
    def check(case):
        _check_invalid(*case)

    check()


def _check_invalid(kind: str, text: str) -> None:
    note(f"mutation: {kind}\n{text[:3000]}")
    if kind == "too_big_file":
        text += "#" + "x" * (1 << 20) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        out = Path(tmp) / "bundle"
        code, _, err = run_cli(["compile", path, "-o", out, "-q"])
        assert code == EXIT_USER, f"{kind}: exit {code}\n{err}"
        assert_located(err, path, whole_file=kind == "too_big_file")
        assert not out.exists()


# ------------------------------------------------------------------------------------------ pinned cases


@pytest.mark.parametrize("text", [
    "",
    ALIAS_BOMB,
    "hetc: 1\nname: x\nslo: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "hetc: 1\nname: x\nslo: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
    "hetc: 1\nname: &x [*x]\n",
    "\ufeffhetc: 1\n\x00\n",
], ids=["empty", "alias-bomb", "deep-list", "deep-mapping", "recursive-alias", "nul-byte"])
def test_hostile_yaml_is_a_located_user_error(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    code, _, err = run_cli(["validate", path])
    assert code == EXIT_USER, err
    assert_located(err, path)
