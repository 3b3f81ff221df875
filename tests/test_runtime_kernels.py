"""The generated kernels run where they apply (issue 14, point 5).

- Code generation emits a kernel only for a stage that calls it at run time, and the plan lists it on that stage:
  on every example, every emitted kernel symbol and file is referenced by a stage, and every stage the runtime runs
  a kernel for has one.
- An embed stage on a CPU (a retrieval's query embedding, a memory store's embedding) pools the token vectors its
  bound callable returns with the bundle's pooling + L2-normalisation kernel; the result equals numpy's, and the
  retrieval ranks the index with it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from hetc.compiler import CompileOptions, compile_spec, write
from hetc.dialects import task as T
from hetc.dialects.interfaces import KernelProvider
from hetc.runtime.kernels import EmbedPool, header_kernels
from hetc.runtime.local import local_router

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml")
                  if "bindings" not in p.name and "hetc-bindings" not in p.read_text()[:200])
RUNTIME_KERNEL_KINDS = {"vector_search": "vector_search_topk", "embed": "embed_pool_l2norm"}
OP_OF_KIND = {op.name.removeprefix("task."): op for op in T.TASK_OPS}


def called_at_run_time(kind: str, target: str) -> bool:
    """Whether the op a stage of `kind` comes from names a kernel its stage calls on `target`."""
    provider = OP_OF_KIND[kind].get_trait(KernelProvider) if kind in OP_OF_KIND else None
    return provider is not None and bool(provider.called_at_run_time(target))


def needs_run_time_kernel(kind: str) -> bool:
    """Whether a stage of `kind` cannot run without its bundle kernel (a search; an embed passes on)."""
    provider = OP_OF_KIND[kind].get_trait(KernelProvider) if kind in OP_OF_KIND else None
    return provider is not None and provider.required

SPEC = """\
hetc: 1
name: embed-on-cpu
slo:
  latency_ms: {p99: 5000}
traffic: {requests_per_s: 1}
models:
  bge: {preset: bge-large-en-v1.5}
nodes:
  question: {kind: input, produces: text, tokens: 32}
  retrieve: {kind: memory_lookup, n_vectors: 16, top_k: 4, embed_model: bge, query_tokens: 32}
  remember: {kind: memory_store, embed_model: bge, tokens: 32}
  vectorise: {kind: embedding, model: bge, tokens: 32}
  answer: {kind: output}
  stored: {kind: output}
  vectors: {kind: output}
edges:
  - question -> retrieve -> answer
  - question -> remember -> stored
  - question -> vectorise -> vectors
hardware:
  pool: [intel-xeon-8480]
"""

# The bound callables: token vectors of a text ([words, 1024], deterministic per word), and a store that
# answers with what it received.
CALLABLES = """\
import json
import numpy as np

DIM = 1024
STORED = []


def tokens(text):
    rows = [np.random.default_rng(sum(map(ord, word)) * 7919 + i).standard_normal(DIM).astype(np.float32)
            for i, word in enumerate(text.split())]
    return np.stack(rows)


def store(text, inputs):
    vector = next(v["embedding"] for v in inputs if "embedding" in v)
    STORED.append(vector)
    return json.dumps({"dim": len(vector), "norm": round(float(np.linalg.norm(vector)), 4)})
"""


def _numpy_pool(hidden: np.ndarray) -> np.ndarray:
    mean = hidden.astype(np.float64).mean(axis=0)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


@pytest.fixture(scope="module")
def embed_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embed")
    (folder / "agent.yaml").write_text(SPEC)
    write(compile_spec(str(folder / "agent.yaml"), CompileOptions()), folder / "bundle")
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((16, 1024)).astype(np.float32)
    np.save(folder / "vectors.npy", vectors)
    (folder / "documents.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": f"doc {i}"}) + "\n"
                                                    for i in range(16)))
    (folder / "embed_callables.py").write_text(CALLABLES)
    (folder / "bind.yaml").write_text(
        "hetc-bindings: 1\nnodes:\n"
        "  retrieve: {vectors: vectors.npy, documents: documents.jsonl, embed: 'embed_callables:tokens'}\n"
        "  remember: {callable: 'embed_callables:store', embed: 'embed_callables:tokens'}\n"
        "  vectorise: {embed: 'embed_callables:tokens'}\n")
    return folder


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_every_emitted_kernel_is_called_by_a_stage_and_every_caller_has_one(example, tmp_path):
    try:
        result = compile_spec(str(example), CompileOptions())
    except Exception as exc:  # an agent file (no slo/traffic) is not compiled alone
        if "agents" in example.parts:
            pytest.skip(f"agent file: {exc}")
        raise
    write(result, tmp_path / "b")
    plan = json.loads((tmp_path / "b" / "plan.json").read_text())
    emitted = {str(p.relative_to(tmp_path / "b")) for p in tmp_path.joinpath("b").rglob("*")
               if p.is_file() and p.parts[len(tmp_path.parts) + 1] in ("cpu", "cuda", "gaudi")}
    referenced = {f for s in plan["stages"] for f in s["kernels"]}
    assert emitted == referenced
    declared = {name for _kind, _params, name in header_kernels(tmp_path / "b")}
    listed = {sym for s in plan["stages"] for sym in s["kernel_symbols"]}
    assert declared == listed  # every CPU kernel in the object code is one some stage calls, and is there
    for stage in plan["stages"]:
        calls = called_at_run_time(stage["kind"], stage["target"])
        if needs_run_time_kernel(stage["kind"]):  # placed only where the bundle has its kernel
            assert calls, f"{stage['id']} ({stage['kind']}) placed on {stage['device']}: no run-time kernel there"
        assert bool(stage["kernel_symbols"]) == calls, stage["id"]
        assert bool(stage["kernels"]) == calls, stage["id"]
        if calls:
            kinds = {kind for kind, _params, name in header_kernels(tmp_path / "b") if name in stage["kernel_symbols"]}
            assert kinds == {RUNTIME_KERNEL_KINDS[stage["kind"]]}, stage["id"]


def test_the_helpdesk_retrieval_lists_its_search_kernel_and_nothing_else(tmp_path):
    write(compile_spec(str(ROOT / "examples" / "cpu-helpdesk" / "agent.yaml"), CompileOptions()), tmp_path / "b")
    plan = json.loads((tmp_path / "b" / "plan.json").read_text())
    with_kernels = {s["id"]: s["kernel_symbols"] for s in plan["stages"] if s["kernel_symbols"]}
    assert with_kernels == {"retrieve.search": ["hetc_search_d32_k3_search"]}
    assert [kind for kind, _p, _n in header_kernels(tmp_path / "b")] == ["vector_search_topk"]


def test_a_cpu_embed_stage_is_the_runtimes_with_its_kernel_not_an_engines(embed_bundle):
    """The op says it: on a CPU, hetc's runtime pools (no engine API in the plan, no engine server)."""
    from hetc.bundle.kubernetes import kubernetes_manifests

    plan = json.loads((embed_bundle / "bundle" / "plan.json").read_text())
    embeds = [s for s in plan["stages"] if s["kind"] == "embed"]
    assert len(embeds) == 3 and all(s["engine"] == "cpu-runtime" and "api" not in s["service"]
                                    and s["kernel_symbols"] for s in embeds)
    manifests = kubernetes_manifests(plan)
    assert sorted(manifests) == ["embed-on-cpu-graph.yaml", "embed-on-cpu-runtime.yaml"]  # no engine server
    runtime = next(d for d in manifests["embed-on-cpu-runtime.yaml"] if d["kind"] == "Deployment")
    assert {s["id"] for s in embeds} <= set(json.loads(runtime["metadata"]["annotations"]["hetc.dev/stages"]))


def test_the_pooling_kernel_equals_numpy(embed_bundle):
    plan = json.loads((embed_bundle / "bundle" / "plan.json").read_text())
    stage = next(s for s in plan["stages"] if s["id"] == "retrieve.embed")
    pool = EmbedPool(embed_bundle / "bundle", symbols=stage["kernel_symbols"])
    assert pool.dim == 1024
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 7, 1024)).astype(np.float32)
    mask = np.ones((3, 7), np.int32)
    mask[1, 4:] = 0
    mask[2, 1:] = 0
    out = pool.pool(hidden, mask)
    for row, count in enumerate((7, 4, 1)):
        np.testing.assert_allclose(out[row], _numpy_pool(hidden[row, :count]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pool.pool(hidden[0]), _numpy_pool(hidden[0]), rtol=1e-5, atol=1e-6)


def test_a_memory_store_embeds_with_the_kernel_end_to_end(embed_bundle, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(embed_bundle))
    sys.modules.pop("embed_callables", None)
    import embed_callables

    router = local_router(embed_bundle / "bundle", embed_bundle / "bind.yaml")
    texts = ["reset my vpn password", "invoice"]
    for text in texts:
        result = asyncio.run(router.run(text, emit=lambda _e: None))
        assert result["visits"]["retrieve.embed"] == 1 and result["visits"]["remember.embed"] == 1
        query = _numpy_pool(embed_callables.tokens(text))
        np.testing.assert_allclose(embed_callables.STORED[-1], query, rtol=1e-5, atol=1e-6)
        assert json.loads(result["outputs"]["stored"]) == {"dim": 1024, "norm": 1.0}


def test_retrieval_ranks_the_index_with_the_pooled_query(embed_bundle, monkeypatch):
    import sys

    from hetc.runtime.bindings import validate_bindings
    from hetc.runtime.workers import StageWorker

    monkeypatch.syspath_prepend(str(embed_bundle))
    sys.modules.pop("embed_callables", None)
    import embed_callables

    plan = json.loads((embed_bundle / "bundle" / "plan.json").read_text())
    stages = {s["id"]: s for s in plan["stages"]}
    bindings = validate_bindings(plan, embed_bundle / "bind.yaml")
    embed = StageWorker(stages["retrieve.embed"], bindings, str(embed_bundle / "bundle"))
    search = StageWorker(stages["retrieve.search"], bindings, str(embed_bundle / "bundle"))
    texts = ["reset my vpn password", "invoice", "the printer on floor two is jammed again"]
    payloads = [{"request_id": str(i), "inputs": [{"text": t}], "deadline_s": 5.0} for i, t in enumerate(texts)]
    embedded = asyncio.run(embed.call_batch(payloads))  # one kernel call, padded and masked
    assert [e["batch_size"] for e in embedded] == [3, 3, 3]
    alone = StageWorker(stages["vectorise"], bindings, str(embed_bundle / "bundle"))  # an embedding node
    np.testing.assert_allclose(asyncio.run(alone.call(payloads[2]))["embedding"], embedded[2]["embedding"])
    vectors = np.load(embed_bundle / "vectors.npy")
    for text, value in zip(texts, embedded, strict=True):
        query = _numpy_pool(embed_callables.tokens(text))
        np.testing.assert_allclose(value["embedding"], query, rtol=1e-5, atol=1e-6)
        found = asyncio.run(search.call({"request_id": "r", "inputs": [value], "deadline_s": 5.0}))
        cosine = (vectors @ query) / np.linalg.norm(vectors, axis=1)
        order = np.argsort(-cosine, kind="stable")[:4]
        assert [d["id"] for d in found["documents"]] == [f"d{i}" for i in order]
        np.testing.assert_allclose([d["score"] for d in found["documents"]], cosine[order], rtol=1e-4, atol=1e-5)


def test_an_embed_callable_of_the_wrong_width_is_a_structured_error(embed_bundle, tmp_path):
    (tmp_path / "narrow.py").write_text("import numpy as np\n\ndef tokens(text):\n    return np.ones((3, 8))\n")
    bind = tmp_path / "bind.yaml"
    bind.write_text(
        f"hetc-bindings: 1\npython_path: [{tmp_path}]\nnodes:\n"
        f"  retrieve: {{vectors: {embed_bundle}/vectors.npy, documents: {embed_bundle}/documents.jsonl, "
        "embed: 'narrow:tokens'}\n")
    from hetc.runtime.router import RequestError

    router = local_router(embed_bundle / "bundle", bind)
    with pytest.raises(RequestError) as caught:
        asyncio.run(router.run("hello", emit=lambda _e: None))
    assert caught.value.error["type"] == "bad_binding" and caught.value.error["stage"] == "retrieve.embed"
    assert "[tokens, 1024]" in caught.value.error["message"]


def test_a_search_stage_without_a_cpu_kernel_is_a_structured_error(embed_bundle, tmp_path):
    """Retrieval placed on a GPU gets no kernel (nothing would launch one): the request fails, naming the fix."""
    from hetc.runtime.bindings import validate_bindings
    from hetc.runtime.workers import StageWorker

    plan = json.loads((embed_bundle / "bundle" / "plan.json").read_text())
    stage = dict(next(s for s in plan["stages"] if s["id"] == "retrieve.search"), target="cuda", kernels=[],
                 kernel_symbols=[])
    bindings = validate_bindings(plan, embed_bundle / "bind.yaml")
    worker = StageWorker(stage, bindings, str(tmp_path))  # a bundle with no cpu/ folder
    value = asyncio.run(worker.call({"request_id": "r", "inputs": [{"text": "hi"}], "deadline_s": 5.0}))
    assert value["error"]["type"] == "no_kernel" and "CPU" in value["error"]["message"]


def test_retrieval_is_placed_only_where_its_kernel_runs_and_explain_says_why():
    """rag-assistant's pool has GPUs and Gaudi: the search may only go to the CPU (the bundle's kernel there),
    and --explain lists every other class as excluded, naming the missing run-time kernel."""
    result = compile_spec(str(ROOT / "examples" / "rag-assistant.yaml"), CompileOptions(explain=True))
    rows = next(e for e in result.placement["explain"] if e["op"] == "retrieve.search")["candidates"]
    excluded = {r["candidate"]: r["reason"] for r in rows if r["reason"].startswith("excluded: no run-time kernel")}
    assert set(excluded) == {"nvidia-a100-80gb", "nvidia-h100-sxm", "amd-mi300x", "intel-gaudi3"}
    assert all("only on cpu" in why for why in excluded.values())
    chosen = next(r for r in rows if r["status"] == "chosen")
    assert chosen["candidate"].startswith("intel-xeon-8480")


def test_a_pool_without_a_cpu_cannot_place_retrieval(tmp_path):
    from hetc.errors import InfeasibleError

    spec = SPEC.replace("pool: [intel-xeon-8480]", "pool: [nvidia-h100-sxm]")
    (tmp_path / "agent.yaml").write_text(spec)
    with pytest.raises(InfeasibleError) as caught:
        compile_spec(str(tmp_path / "agent.yaml"), CompileOptions())
    messages = [d.message for d in caught.value.diagnostics]
    assert any(m.startswith("retrieve.search: needs a device of target cpu") for m in messages), messages


def test_the_rag_example_runs_retrieval_with_its_bundles_kernel(tmp_path):
    """The RAG example's plan, compiled and run: its search stage ranks a bound index (no `no_kernel`)."""
    from hetc.runtime.bindings import validate_bindings
    from hetc.runtime.workers import StageWorker

    write(compile_spec(str(ROOT / "examples" / "rag-assistant.yaml"), CompileOptions()), tmp_path / "b")
    plan = json.loads((tmp_path / "b" / "plan.json").read_text())
    stage = next(s for s in plan["stages"] if s["id"] == "retrieve.search")
    vectors = np.random.default_rng(5).standard_normal((32, 1024)).astype(np.float32)
    np.save(tmp_path / "vectors.npy", vectors)
    (tmp_path / "documents.jsonl").write_text("".join(json.dumps({"id": f"d{i}"}) + "\n" for i in range(32)))
    (tmp_path / "rag_callables.py").write_text("def embed(text):\n    return [1.0] * 1024\n\n"
                                               "def same(text, inputs):\n    return text\n")
    (tmp_path / "bind.yaml").write_text(  # the models are never called: only the search stage runs here
        "hetc-bindings: 1\nmodels:\n  chat: {endpoint: 'http://127.0.0.1:9/v1'}\n"
        "  embedder: {endpoint: 'http://127.0.0.1:9/v1'}\nnodes:\n"
        "  privacy_filter: {callable: 'rag_callables:same'}\n  remember: {callable: 'rag_callables:same'}\n"
        "  retrieve: {vectors: vectors.npy, documents: documents.jsonl, embed: 'rag_callables:embed'}\n")
    bindings = validate_bindings(plan, tmp_path / "bind.yaml")
    worker = StageWorker(stage, bindings, str(tmp_path / "b"))
    query = vectors[7] + 0.01
    found = asyncio.run(worker.call({"request_id": "r", "inputs": [{"text": "q", "embedding": query.tolist()}],
                                     "deadline_s": 5.0}))
    assert "error" not in found, found.get("error")
    assert found["documents"][0]["id"] == "d7" and len(found["documents"]) == 8
