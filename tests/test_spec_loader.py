"""The spec loader on valid specs: the examples, defaults per node kind, models, includes, YAML details."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetc.errors import HetcError, Loc
from hetc.model.hf_config import bundled
from hetc.model.models import PRESETS
from hetc.spec import Graph, Spec
from hetc.spec.fields import NODE_FIELDS
from hetc.spec.loader import load_spec
from hetc.spec.rules import ARCH_RULES, TOP_KEYS
from hetc.spec.yaml_source import YamlList, YamlMap, YamlScalar, parse_yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
DEVICE_IDS = ("intel-xeon-8480", "nvidia-a100-80gb", "nvidia-h100-sxm", "nvidia-h200", "nvidia-b200",
              "amd-mi300x", "intel-gaudi3")
DEVICES = {**{d: d for d in DEVICE_IDS}, "h100": "nvidia-h100-sxm", "b200": "nvidia-b200", "gaudi3": "intel-gaudi3"}


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def spec_with(tmp_path: Path, models: str, nodes: str, edges: str, extra: str = "") -> Spec:
    text = (f"hetc: 1\nname: t\ntraffic: {{requests_per_s: 1}}\n{extra}models:\n{models}\n"
            f"nodes:\n{nodes}\nedges:\n{edges}\n")
    return load_spec(write(tmp_path, text), DEVICES)


def walk(graph: Graph):
    for node in graph.nodes.values():
        yield node
        if node.subgraph is not None:
            yield from walk(node.subgraph)


def test_the_five_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"voice-agent.yaml", "rag-assistant.yaml", "supervisor.yaml", "coding-agent.yaml",
            "moe-agent.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_with_and_without_device_checks(path: Path):
    checked = load_spec(path, DEVICES)
    unchecked = load_spec(path)
    assert checked.graph == unchecked.graph and checked.models == unchecked.models
    assert checked.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert checked.hardware.pool is None or set(checked.hardware.pool) <= set(DEVICE_IDS)
    for node in walk(checked.graph):
        if node.model is not None:
            assert node.model in checked.models
    for model in checked.models.values():  # the examples use real models: presets or bundled published configs
        assert model.arch.name in PRESETS or model.arch.name in bundled()


def test_examples_cover_every_task_kind():
    kinds = {node.kind for path in EXAMPLES for node in walk(load_spec(path).graph)}
    assert kinds == set(NODE_FIELDS)


def test_voice_agent(tmp_path: Path):
    spec = load_spec(ROOT / "examples" / "voice-agent.yaml", DEVICES)
    nodes = spec.graph.nodes
    assert list(nodes) == ["mic", "stt", "llm", "search", "tts", "speaker"]
    assert spec.models["chat"].arch.name == "llama-3-70b"
    assert (spec.models["chat"].precision, spec.models["chat"].kv_precision) == ("fp8", "fp8")
    assert nodes["stt"].attrs == {"description": "", "audio_seconds": 6.0, "output_tokens": 64}  # from mic
    assert nodes["mic"].attrs["bytes"] == 6 * 32_000
    assert nodes["llm"].model == "chat"
    assert nodes["search"].attrs["tool"] == "web_search"
    edges = {(e.src, e.dst): e for e in spec.graph.edges}
    assert edges[("llm", "search")].probability == 0.4
    assert edges[("search", "llm")].max_iterations == 3
    assert edges[("mic", "stt")].loc.line == edges[("stt", "llm")].loc.line
    assert edges[("stt", "llm")].loc.col - edges[("mic", "stt")].loc.col == len("mic -> ")
    assert (spec.slo.latency_ms, spec.slo.percentile, spec.slo.ttft_ms, spec.slo.tbt_ms) == (30000, "p99", 250, 20)
    assert spec.traffic.requests_per_s == 40 and spec.traffic.objective is None
    assert spec.hardware.inventory["nvidia-h100-sxm"].count == 64 and spec.hardware.inventory["nvidia-h100-sxm"].sunk


def test_supervisor_subgraphs_and_model_merge():
    spec = load_spec(ROOT / "examples" / "supervisor.yaml", DEVICES)
    researcher = spec.graph.nodes["researcher"]
    analyst = spec.graph.nodes["analyst"]
    assert researcher.attrs["file"] == str(Path("examples/agents/researcher.yaml")) or \
        researcher.attrs["file"].endswith("examples/agents/researcher.yaml")
    assert researcher.attrs["agent_name"] == "researcher" and researcher.attrs["plan_as_unit"] is False
    assert "summarize" in researcher.subgraph.nodes
    assert analyst.attrs["file"] == "" and analyst.attrs["plan_as_unit"] is True
    assert analyst.subgraph.nodes["write_code"].model == "worker"
    assert sorted(spec.models) == ["planner", "worker"]  # worker is defined identically in both files
    (included,) = spec.included_sha256
    assert included.endswith("agents/researcher.yaml")
    researcher_node = researcher.subgraph.nodes["summarize"]
    assert researcher_node.loc.file == included and researcher_node.loc.line > 0


DEFAULTS_SPEC_MODELS = """\
  chat: llama-3-8b
  asr: {preset: whisper}
  voice: {preset: kokoro-82m}
  emb: {preset: bge-large-en-v1.5}"""
DEFAULTS_SPEC_NODES = """\
  i: {kind: input}
  a: {kind: input, produces: audio}
  e: {kind: input, produces: embedding}
  t: {kind: input, produces: tokens, tokens: 10, bytes: 7}
  llm: {kind: llm, model: chat}
  stt: {kind: speech_to_text, model: asr}
  tts: {kind: text_to_speech, model: voice}
  emb: {kind: embedding, model: emb}
  gen: {kind: model, model: chat}
  kv: {kind: kv_cache, model: chat}
  tool: {kind: tool, latency_ms: 300}
  look: {kind: memory_lookup, n_vectors: 1e6, embed_model: emb}
  look2: {kind: memory_lookup, n_vectors: 1_000, dim: 8}
  store: {kind: memory_store, dim: 16}
  cpu: {kind: compute, cpu_ms: 0.25}
  guard: {kind: guardrail, model: chat}
  sub: {kind: agent, graph: {nodes: {x: {kind: input}, y: {kind: output}}, edges: [x -> y]}}
  o: {kind: output}"""
DEFAULTS_SPEC_EDGES = """\
  - i -> llm -> stt -> tts -> emb -> gen -> kv -> tool -> look -> look2 -> store -> cpu -> guard -> sub -> o
  - a -> o
  - e -> o
  - t -> o"""


def test_defaults_and_attrs_per_kind(tmp_path: Path):
    spec = spec_with(tmp_path, DEFAULTS_SPEC_MODELS, DEFAULTS_SPEC_NODES, DEFAULTS_SPEC_EDGES)
    attrs = {n.id: n.attrs for n in spec.graph.nodes.values()}
    assert attrs["i"] == {"description": "", "produces": "text", "tokens": 64, "bytes": 256}
    assert attrs["a"] == {"description": "", "produces": "audio", "audio_seconds": 10.0, "bytes": 320_000}
    assert attrs["e"] == {"description": "", "produces": "embedding", "dim": 1024, "bytes": 4096}
    assert attrs["t"] == {"description": "", "produces": "tokens", "tokens": 10, "bytes": 7}
    assert attrs["llm"] == {"description": "", "input_tokens": 512, "output_tokens": 256}
    assert attrs["stt"] == {"description": "", "audio_seconds": 10.0, "output_tokens": 64}  # no audio input feeds it
    assert attrs["tts"] == {"description": "", "input_tokens": 128, "audio_seconds": 10.0}
    assert attrs["emb"] == {"description": "", "tokens": 256}
    assert attrs["gen"] == {"description": "", "input_tokens": 512, "output_tokens": 0}
    assert attrs["kv"] == {"description": "", "tokens": 2048, "placement": "local"}
    assert attrs["tool"] == {"description": "", "tool": "tool", "latency_ms": 300.0, "latency_p99_ms": 300.0,
                             "compute_ms": 0.0, "request_kb": 1.0, "response_kb": 4.0}
    assert attrs["look"] == {"description": "", "n_vectors": 1_000_000, "dim": 1024, "precision": "fp32",
                             "index": "flat", "top_k": 10, "query_tokens": 64, "embed_model": "emb",
                             "rerank_model": None}
    assert attrs["look2"]["dim"] == 8 and attrs["look2"]["n_vectors"] == 1000
    assert attrs["store"] == {"description": "", "n_vectors": 1, "dim": 16, "precision": "fp32", "tokens": 64,
                              "embed_model": None, "latency_ms": 2.0}
    assert attrs["cpu"] == {"description": "", "cpu_ms": 0.25, "op": "none"}
    assert attrs["guard"] == {"description": "", "input_tokens": 512, "output_tokens": 8}
    assert attrs["sub"] == {"description": "", "plan_as_unit": False, "file": "", "agent_name": "sub"}
    assert attrs["o"] == {"description": ""}
    nodes = spec.graph.nodes
    assert nodes["look"].model == "emb" and nodes["store"].model is None and nodes["cpu"].model is None
    assert spec.models["asr"].arch.name == "whisper-large-v3"  # alias
    assert (spec.models["chat"].precision, spec.models["chat"].kv_precision) == ("bf16", "bf16")
    assert spec.slo.latency_ms is None and spec.hardware.pool is None and spec.hardware.pricing == "ownership"
    # every kind has a row in this test
    assert {n.kind for n in walk(spec.graph)} == set(NODE_FIELDS)


def test_explicit_architecture_and_overrides(tmp_path: Path):
    models = """\
  tiny:
    arch: {kind: decoder, n_layers: 2, d_model: 64, n_heads: 8, n_kv_heads: 2, d_ff: 128, vocab_size: 1000,
           n_experts: 4, experts_per_token: 2}
  long: {preset: llama-3-8b, overrides: {max_context: 131072}, precision: int4, kv_precision: fp8}"""
    nodes = """\
  i: {kind: input}
  a: {kind: llm, model: tiny, input_tokens: 100, output_tokens: 10}
  b: {kind: llm, model: long, input_tokens: 100000, output_tokens: 1000}
  o: {kind: output}"""
    spec = spec_with(tmp_path, models, nodes, "  - i -> a -> b -> o")
    tiny = spec.models["tiny"].arch
    assert (tiny.name, tiny.n_kv_heads, tiny.is_moe, tiny.max_context) == ("tiny", 2, True, 8192)
    long = spec.models["long"]
    assert long.arch.max_context == 131072 and long.arch.n_layers == 32
    assert (long.precision, long.kv_precision) == ("int4", "fp8")
    assert spec.models["tiny"].loc.line == 5


def test_unusual_node_ids_are_kept(tmp_path: Path):
    nodes = """\
  'x"; system("rm -rf /")': {kind: input}
  "überprüfung 🔍": {kind: compute, cpu_ms: 1}
  on: {kind: output}"""
    edges = """\
  - 'x"; system("rm -rf /") -> überprüfung 🔍 -> on'"""
    spec = spec_with(tmp_path, "  {}", nodes, edges)
    assert list(spec.graph.nodes) == ['x"; system("rm -rf /")', "überprüfung 🔍", "on"]
    assert [(e.src, e.dst) for e in spec.graph.edges] == [('x"; system("rm -rf /")', "überprüfung 🔍"),
                                                          ("überprüfung 🔍", "on")]


def test_yaml_merge_keys_and_anchors(tmp_path: Path):
    nodes = """\
  i: {kind: input}
  a: &tool_defaults {kind: tool, latency_ms: 100, response_kb: 8}
  b: {<<: *tool_defaults, latency_ms: 250}
  o: {kind: output}"""
    spec = spec_with(tmp_path, "  {}", nodes, "  - i -> a -> b -> o")
    b = spec.graph.nodes["b"].attrs
    assert (b["latency_ms"], b["response_kb"]) == (250.0, 8.0)


def test_device_aliases_resolve_to_canonical_ids(tmp_path: Path):
    extra = "hardware:\n  pool: [h100, B200, intel-xeon-8480]\n  inventory: {h100: {count: 8}}\n  pricing: cloud\n"
    spec = spec_with(tmp_path, "  {}", "  i: {kind: input}\n  o: {kind: output}", "  - i -> o", extra)
    assert spec.hardware.pool == ["nvidia-h100-sxm", "nvidia-b200", "intel-xeon-8480"]
    assert spec.hardware.inventory["nvidia-h100-sxm"].count == 8
    assert spec.hardware.inventory["nvidia-h100-sxm"].sunk is False
    assert spec.hardware.pricing == "cloud"


def test_latency_percentiles(tmp_path: Path):
    extra = "slo:\n  latency_ms: {p99: 2500, p50: 800}\n  ttft_ms: 250\n"
    spec = spec_with(tmp_path, "  {}", "  i: {kind: input}\n  o: {kind: output}", "  - i -> o", extra)
    assert spec.slo.latency_percentiles_ms == {"p50": 800.0, "p99": 2500.0}
    assert (spec.slo.latency_ms, spec.slo.percentile) == (2500.0, "p99")


def test_loading_is_deterministic():
    for path in EXAMPLES:
        assert load_spec(path, DEVICES) == load_spec(path, DEVICES)


def test_yaml_source_locations():
    root = parse_yaml(b"a:\n  b: [1, two]\n  'c d': {e: yes}\n", "f.yaml")
    assert isinstance(root, YamlMap) and root.loc == Loc("f.yaml", 1, 1)
    key_b, value_b = root.entries["a"][1].entries["b"]
    assert key_b.loc == Loc("f.yaml", 2, 3)
    assert isinstance(value_b, YamlList) and value_b.loc == Loc("f.yaml", 2, 6)
    assert [(i.value, i.loc.col) for i in value_b.items] == [(1, 7), ("two", 10)]
    key_c, value_c = root.entries["a"][1].entries["c d"]
    assert key_c.quoted and key_c.loc == Loc("f.yaml", 3, 3)
    e = value_c.entries["e"][1]
    assert isinstance(e, YamlScalar) and e.value is True and e.text == "yes" and e.loc == Loc("f.yaml", 3, 14)


YAML_CORPUS = EXAMPLES + sorted((ROOT / "tests" / "data").rglob("*.yaml")) + sorted((ROOT / "hetc" / "hwdb").rglob("*.yaml"))


@pytest.mark.parametrize("path", YAML_CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_libyaml_and_pure_python_parsers_agree(path: Path, monkeypatch):
    """Specs are parsed by libyaml for speed; values, locations and errors must be those of the pure-Python
    parser (which reports syntax errors)."""
    from hetc.spec import yaml_source

    def outcome():
        try:
            return parse_yaml(path.read_bytes(), path.name)
        except HetcError as exc:
            return [str(d) for d in exc.diagnostics]

    fast = outcome()
    monkeypatch.setattr(yaml_source, "_FastLoader", yaml_source._PyLoader)
    assert fast == outcome()
    assert yaml_source.CParser is not None, "PyYAML without libyaml: specs parse 4x slower"


def test_docs_describe_every_field():
    docs = (ROOT / "docs" / "spec.md").read_text()
    names = set(TOP_KEYS) | set(ARCH_RULES) | {r.name for rules in NODE_FIELDS.values() for r in rules}
    names |= set(NODE_FIELDS) | {"probability", "max_iterations", "latency_ms", "ttft_ms", "tbt_ms",
                                 "requests_per_s", "objective", "pool", "inventory", "pricing", "count", "sunk",
                                 "preset", "arch", "overrides", "precision", "kv_precision"}
    missing = sorted(n for n in names if not re.search(rf"`{re.escape(n)}`", docs))
    assert not missing, f"docs/spec.md does not mention: {missing}"


# ---- graph checks against a reference ---------------------------------------------------------------

def has_cycle(n: int, edges: list[tuple[int, int]]) -> bool:
    """Kahn's algorithm: a directed graph is acyclic iff it can be topologically sorted."""
    indegree = [0] * n
    for _, dst in edges:
        indegree[dst] += 1
    ready = [v for v in range(n) if indegree[v] == 0]
    removed = 0
    while ready:
        v = ready.pop()
        removed += 1
        for src, dst in edges:
            if src == v:
                indegree[dst] -= 1
                if indegree[dst] == 0:
                    ready.append(dst)
    return removed < n


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(
    st.just(n), st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=10),
    st.sets(st.integers(0, 9), max_size=3))))
def test_unbounded_cycles_match_reference(case):
    n, edge_set, bounded_indexes = case
    edges = sorted(edge_set)
    bounded = {edges[i] for i in bounded_indexes if i < len(edges)}
    # nodes c0..c{n-1} between an input and an output so reachability holds
    lines = ["  - i -> c0", f"  - c{n - 1} -> o"] + [f"  - c{k} -> c{k + 1}" for k in range(n - 1)
                                                     if (k, k + 1) not in edge_set]
    for src, dst in edges:
        lines.append(f"  - c{src} -> c{dst}: {{max_iterations: 2}}" if (src, dst) in bounded
                     else f"  - c{src} -> c{dst}")
    nodes = "\n".join(["  i: {kind: input}", "  o: {kind: output}"]
                      + [f"  c{k}: {{kind: compute, cpu_ms: 1}}" for k in range(n)])
    text = f"hetc: 1\nname: t\ntraffic: {{requests_per_s: 1}}\nnodes:\n{nodes}\nedges:\n" + "\n".join(lines) + "\n"
    all_edges = edges + [(k, k + 1) for k in range(n - 1) if (k, k + 1) not in edge_set]
    unbounded = [e for e in all_edges if e not in bounded]
    # bounded edges that close no cycle are errors too
    def reaches(a: int, b: int) -> bool:
        seen, stack = {a}, [a]
        while stack:
            v = stack.pop()
            for s, d in all_edges:
                if s == v and d not in seen:
                    seen.add(d)
                    stack.append(d)
        return b in seen
    misplaced = [e for e in bounded if not reaches(e[1], e[0])]
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.yaml"
        path.write_text(text)
        try:
            load_spec(path)
            messages = []
        except HetcError as exc:
            messages = [d.message for d in exc.diagnostics]
    assert any("unbounded cycle" in m for m in messages) == has_cycle(n, unbounded)
    assert sum("closes no cycle" in m for m in messages) == len(misplaced)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))))
def test_strongly_connected_components_are_the_mutually_reachable_nodes(graph):
    """The spec check of loop bounds asks whether an edge's ends share a component (its end reaches its start)."""
    from hetc.spec.graph import reachable, strongly_connected

    n, pairs = graph
    nodes = [f"v{i}" for i in range(n)]
    succ = {v: [] for v in nodes}
    for a, b in pairs:
        succ[nodes[a]].append(nodes[b])
    comps = strongly_connected(nodes, succ)
    assert sorted(v for comp in comps for v in comp) == sorted(nodes)
    component = {v: i for i, comp in enumerate(comps) for v in comp}
    reach = {v: reachable(succ, [v]) for v in nodes}
    for a in nodes:
        for b in nodes:
            assert (component[a] == component[b]) == (b in reach[a] and a in reach[b])
    for a, b in pairs:  # a component comes after every component it reaches
        assert component[nodes[a]] >= component[nodes[b]]
