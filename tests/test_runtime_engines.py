"""Stages an engine serves that hetc's runtime calls per request, as the plan says (service `api`, stated by
the op): an embed stage placed on a GPU asks its engine's /v1/embeddings and the search ranks with that
vector; a guardrail asks Llama Guard for a verdict and refuses or passes the question on; a memory lookup's
cross-encoder reorders the search's documents before they reach the LLM. In-process router against the OpenAI
stand-in (no GPU here); tests/test_runtime_ray.py runs them on Ray Serve."""

from __future__ import annotations

import asyncio
import json

import pytest
from stand_ins.openai_llm import StandInLLM
from stand_ins.served_graphs import (
    EMBED_DIM,
    compile_example,
    compile_reranked,
    document_text,
    expected_top,
    guarded_bindings,
    rag_bindings,
    reranked_bindings,
    reranked_order,
    write_index,
)

from hetc.bundle.kubernetes import kubernetes_manifests
from hetc.dialects import task as T
from hetc.dialects.interfaces import (
    EMBEDDINGS_API,
    RERANK_API,
    SAFETY_VERDICT_API,
    SPEECH_API,
    TRANSCRIPTION_API,
    Served,
)
from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb
from hetc.runtime.bindings import validate_bindings
from hetc.runtime.engine_stages import ENGINE_CALLS, read_verdict
from hetc.runtime.local import local_router
from hetc.runtime.router import RequestError

QUESTION = "What does the warranty cover?"


@pytest.fixture(scope="module")
def rag_bundle(tmp_path_factory):
    return compile_example("rag-assistant", tmp_path_factory.mktemp("rag") / "bundle")


@pytest.fixture(scope="module")
def guarded_bundle(tmp_path_factory):
    return compile_example("guarded-chat", tmp_path_factory.mktemp("guarded") / "bundle")


@pytest.fixture(scope="module")
def reranked_bundle(tmp_path_factory):
    return compile_reranked(tmp_path_factory.mktemp("reranked"))


@pytest.fixture(scope="module")
def llm():
    with StandInLLM(embedding_dim=EMBED_DIM) as server:
        yield server


def plan_of(bundle) -> dict:
    return json.loads((bundle / "plan.json").read_text())


def stages_of(bundle) -> dict[str, dict]:
    return {s["id"]: s for s in plan_of(bundle)["stages"]}


# ---------------------------------------------------------------------------------------------- the plan


def test_the_embed_op_says_who_serves_it_on_each_device_class():
    served = T.EmbedOp.get_trait(Served)
    devices = load_hwdb().devices
    assert served.engine_call(devices["intel-xeon-8480"]) == {}  # hetc's runtime: the bundle's pooling kernel
    assert served.engine_call(devices["nvidia-a100-80gb"]) == {"api": EMBEDDINGS_API}
    assert served.engine_call(devices["intel-gaudi3"]) == {"api": EMBEDDINGS_API}
    guard = T.GuardrailOp.get_trait(Served)
    assert guard.engine_call(devices["intel-xeon-8480"]) == {"api": SAFETY_VERDICT_API}  # vLLM's CPU build


def test_a_cross_encoder_is_served_by_an_engine_on_every_device_class():
    # hetc's runtime has no callable or kernel that rescores documents: vLLM's CPU build serves it on a CPU
    served = T.RerankOp.get_trait(Served)
    devices = load_hwdb().devices
    for device in ("intel-xeon-8480", "nvidia-a100-80gb", "amd-mi300x", "intel-gaudi3"):
        assert served.engine_call(devices[device]) == {"api": RERANK_API}, device
    assert served.engine(devices["intel-xeon-8480"]) == "vllm-cpu"


def test_the_plan_names_the_engine_call_the_schema_and_the_runtime_know():
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[1] / "hetc/schemas/plan.schema.json").read_text())
    batch = next(b["then"] for b in schema["$defs"]["service"]["allOf"] if b["if"]["properties"]["type"]["const"] == "batch")
    assert set(batch["properties"]["api"]["enum"]) == set(ENGINE_CALLS) == {
        EMBEDDINGS_API, SAFETY_VERDICT_API, RERANK_API, TRANSCRIPTION_API, SPEECH_API}


def test_speech_ops_state_their_audio_api_and_a_generic_encoder_none(tmp_path):
    # text to speech is a server's call on every device class (the runtime synthesises nothing itself); an
    # encoder op states the transcription API only for a speech-to-text (encoder-decoder) model
    import yaml
    from stand_ins.served_graphs import EXAMPLES, compile_spec_file

    devices = load_hwdb().devices
    tts = T.TTSOp.get_trait(Served)
    for device in ("nvidia-h100-sxm", "amd-mi300x", "intel-xeon-8480", "intel-gaudi3"):
        assert tts.engine_call(devices[device]) == {"api": SPEECH_API}
    spec = yaml.safe_load((EXAMPLES / "voice-agent.yaml").read_text())
    spec["models"]["small"] = {"preset": "llama-3-8b"}
    spec["nodes"]["summary"] = {"kind": "model", "model": "small", "input_tokens": 256, "output_tokens": 16}
    spec["edges"][-1] = "llm -> tts -> summary -> speaker"
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    stages = stages_of(compile_spec_file(tmp_path / "agent.yaml", tmp_path / "bundle"))
    assert stages["stt"]["kind"] == stages["summary"]["kind"] == "encoder"
    assert stages["stt"]["service"]["api"] == TRANSCRIPTION_API and "api" not in stages["summary"]["service"]


def test_gpu_embed_stages_are_served_by_an_engine_and_cpu_ones_by_the_kernel(rag_bundle):
    stages = stages_of(rag_bundle)
    for sid in ("retrieve.embed", "remember.embed"):
        assert stages[sid]["device_kind"] == "gpu" and stages[sid]["engine"] == "vllm"
        assert stages[sid]["service"]["api"] == EMBEDDINGS_API and not stages[sid]["kernel_symbols"]
    assert "api" not in stages["retrieve.search"]["service"]


# ----------------------------------------------------------------------------------------------- RAG


def test_the_gpu_embed_stage_asks_the_engine_and_the_search_ranks_with_its_vector(rag_bundle, llm, tmp_path):
    router = local_router(rag_bundle, rag_bindings(tmp_path / "bind.yaml", llm.url))
    llm.requests.clear()
    llm.embedding_requests.clear()
    result = asyncio.run(router.run(QUESTION))
    # both embed stages called /v1/embeddings with the text they were given: the lookup's the question, the
    # store's the answer
    answer = result["outputs"]["answer"]
    assert sorted(r["input"] for r in llm.embedding_requests) == [[QUESTION], [answer]]
    assert {r["model"] for r in llm.embedding_requests} == {"BAAI/bge-large-en-v1.5"}
    assert result["visits"]["retrieve.embed"] == 1 and result["visits"]["retrieve.search"] == 1
    # the search ranked the index for the engine's vector: the LLM's context holds numpy's top 8 for it
    prompt = next(r for r in llm.requests if "messages" in r)["messages"][0]["content"]
    context = [line.split("]")[0][1:] for line in prompt.split("Context:\n")[1].splitlines()]
    assert context == expected_top(QUESTION, tmp_path, 8)
    assert result["outputs"]["answer"] == "stand-in answer: 0 tool results, 0 articles."


def test_a_batch_of_texts_is_one_engine_request(rag_bundle, llm, tmp_path):
    from hetc.runtime.workers import StageWorker

    plan = plan_of(rag_bundle)
    bindings = validate_bindings(plan, rag_bindings(tmp_path / "bind.yaml", llm.url))
    worker = StageWorker(stages_of(rag_bundle)["retrieve.embed"], bindings, str(rag_bundle))
    llm.embedding_requests.clear()
    payloads = [{"request_id": f"r{i}", "inputs": [{"text": f"question {i}"}], "deadline_s": 5.0} for i in range(3)]
    values = asyncio.run(worker.call_batch(payloads))
    assert [r["input"] for r in llm.embedding_requests] == [["question 0", "question 1", "question 2"]]
    assert [v["embedding"] for v in values] == [StandInLLM.embedding(f"question {i}", EMBED_DIM) for i in range(3)]


def test_a_retrieval_behind_an_engine_embed_stage_needs_no_embed_callable(rag_bundle, tmp_path):
    bindings = validate_bindings(plan_of(rag_bundle), rag_bindings(tmp_path / "bind.yaml", "http://127.0.0.1:9/v1"))
    assert bindings["nodes"]["retrieve"]["embed"] is None and "embedder" in bindings["models"]


def test_the_embed_model_needs_an_endpoint(rag_bundle, tmp_path):
    path = rag_bindings(tmp_path / "bind.yaml", "http://127.0.0.1:9/v1")
    path.write_text(path.read_text().replace("embedder:", "unused:"))
    with pytest.raises(HetcError, match="model 'embedder' has no endpoint"):
        validate_bindings(plan_of(rag_bundle), path)


def test_an_engine_that_is_down_ends_the_request_with_a_structured_error(rag_bundle, tmp_path):
    router = local_router(rag_bundle, rag_bindings(tmp_path / "bind.yaml", "http://127.0.0.1:9/v1"))
    with pytest.raises(RequestError) as error:
        asyncio.run(router.run(QUESTION))
    assert error.value.error["type"] == "llm_failed" and error.value.error["stage"].endswith(".embed")


PINNED = """\
hetc: 1
name: pinned-embedder
slo:
  latency_ms: {p99: 5000}
traffic: {requests_per_s: 1}
models:
  bge: {preset: bge-large-en-v1.5, engine: vllm}
nodes:
  question: {kind: input, produces: text, tokens: 32}
  retrieve: {kind: memory_lookup, n_vectors: 40, top_k: 4, embed_model: bge, query_tokens: 32}
  answer: {kind: output}
edges:
  - question -> retrieve -> answer
hardware:
  pool: [intel-xeon-8480]
"""


def test_an_engine_the_spec_pins_serves_the_cpu_embed_stage(llm, tmp_path):
    # the user asked for vLLM: the plan names it and its embeddings call, the bundle carries no pooling kernel
    # for it, the runtime asks the engine and the export runs vLLM's CPU build
    from stand_ins.served_graphs import compile_spec_file

    (tmp_path / "agent.yaml").write_text(PINNED)
    bundle = compile_spec_file(tmp_path / "agent.yaml", tmp_path / "bundle")
    stage = stages_of(bundle)["retrieve.embed"]
    assert stage["device_kind"] == "cpu" and stage["engine"] == "vllm"
    assert stage["service"]["api"] == EMBEDDINGS_API and stage["kernel_symbols"] == []
    write_index(tmp_path)
    bind = tmp_path / "bind.yaml"
    bind.write_text(f"hetc-bindings: 1\nmodels: {{bge: {{endpoint: '{llm.url}'}}}}\n"
                    "nodes: {retrieve: {vectors: vectors.npy, documents: documents.jsonl}}\n")
    llm.embedding_requests.clear()
    result = asyncio.run(local_router(bundle, bind).run(QUESTION))
    assert [r["input"] for r in llm.embedding_requests] == [[QUESTION]]
    assert result["visits"]["retrieve.search"] == 1
    server = _containers(kubernetes_manifests(plan_of(bundle)))["pinned-embedder-retrieve-embed"]
    assert server["image"] == "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:latest"
    assert server["args"][:4] == ["--model", "BAAI/bge-large-en-v1.5", "--runner", "pooling"]


# ----------------------------------------------------------------------------------------------- rerank


def test_the_rerank_stage_is_an_engine_call_in_the_plan(reranked_bundle):
    stage = stages_of(reranked_bundle)["retrieve.rerank"]
    assert stage["engine"].startswith("vllm") and stage["service"]["api"] == RERANK_API
    assert stage["model"]["name"] == "bge-reranker-v2-m3"


def test_the_documents_reach_the_llm_in_the_rerankers_order(reranked_bundle, llm, tmp_path):
    router = local_router(reranked_bundle, reranked_bindings(tmp_path / "bind.yaml", llm.url))
    llm.requests.clear()
    llm.rerank_requests.clear()
    result = asyncio.run(router.run(QUESTION))
    searched = expected_top(QUESTION, tmp_path, 8)
    # the cross-encoder got the query and the search's documents, in the search's order
    (request,) = llm.rerank_requests
    assert request["query"] == QUESTION and request["model"] == "BAAI/bge-reranker-v2-m3"
    assert request["documents"] == [document_text(i) for i in searched] and request["top_n"] == 8
    prompt = next(r for r in llm.requests if "messages" in r)["messages"][0]["content"]
    context = [line.split("]")[0][1:] for line in prompt.split("Context:\n")[1].splitlines()]
    assert context == reranked_order(QUESTION, tmp_path, 8) != searched  # the reranker's order, not the search's
    assert result["visits"]["retrieve.rerank"] == 1


def test_a_rerank_answer_that_misses_documents_fails_the_request():
    from hetc.runtime.llm_client import LLMError, rerank

    class Partial(StandInLLM):
        def rerank(self, handler, body):
            super().rerank(handler, {**body, "top_n": 1})  # answers one of the documents only

    with Partial() as server:
        with pytest.raises(LLMError, match="ranked 1 of 3 documents"):
            asyncio.run(rerank({"endpoint": server.url, "model": "m"}, "q", ["a", "b", "c"], 5.0, "r1"))


# --------------------------------------------------------------------------------------------- guardrail


def test_a_safe_question_passes_the_guard_and_is_answered(guarded_bundle, llm, tmp_path):
    router = local_router(guarded_bundle, guarded_bindings(tmp_path / "bind.yaml", llm.url))
    llm.requests.clear()
    result = asyncio.run(router.run("How do I bake bread?"))
    guard, chat = llm.requests
    assert guard["model"] == "meta-llama/Llama-Guard-3-1B" and guard["max_tokens"] == 8
    assert guard["messages"] == [{"role": "user", "content": "How do I bake bread?"}]
    assert chat["messages"][0]["content"] == "How do I bake bread?"  # the question, not the verdict
    assert result["outputs"] == {"answer": "stand-in answer: 0 tool results, 0 articles."}
    assert "refused" not in result and result["visits"]["screen"] == 1


def test_an_unsafe_question_is_refused_and_never_reaches_the_model(guarded_bundle, llm, tmp_path):
    router = local_router(guarded_bundle, guarded_bindings(tmp_path / "bind.yaml", llm.url))
    llm.requests.clear()
    result = asyncio.run(router.run("UNSAFE: how do I hurt someone?"))
    assert result["refused"] == {"stage": "screen", "node": "screen", "verdict": "unsafe", "categories": ["S1", "S10"]}
    assert result["outputs"] == {} and "answer_llm.prefill" not in result["visits"]
    assert [r["model"] for r in llm.requests] == ["meta-llama/Llama-Guard-3-1B"]
    metrics = router.metrics.exposition()[0].decode()
    assert 'hetc_requests_total{outcome="refused"} 1.0' in metrics


@pytest.mark.parametrize(("reply", "verdict"), [
    ("\n\nsafe", (True, [])), ("safe", (True, [])), ("\n\nunsafe\nS10,S1", (False, ["S1", "S10"])),
    ("unsafe", (False, [])), ("UNSAFE\nS3", (False, ["S3"])),
])
def test_llama_guard_verdicts_are_read(reply, verdict):
    assert read_verdict(reply) == verdict


@pytest.mark.parametrize("reply", ["", "maybe", "I cannot help\x1b[31m", "safe-ish"])
def test_a_reply_that_is_no_verdict_lets_nothing_through(reply):
    from hetc.runtime.llm_client import LLMError

    with pytest.raises(LLMError, match="neither 'safe' nor 'unsafe'") as error:
        read_verdict(reply)
    assert "\x1b" not in str(error.value)


# -------------------------------------------------------------------------------------------- Kubernetes


def _containers(manifests: dict) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["containers"][0]
            for docs in manifests.values() for doc in docs if doc["kind"] == "Deployment"}


def test_the_kubernetes_export_creates_the_embedding_servers(rag_bundle):
    containers = _containers(kubernetes_manifests(plan_of(rag_bundle)))
    for name in ("rag-assistant-retrieve-embed", "rag-assistant-remember-embed"):
        args = containers[name]["args"]
        assert args[:4] == ["--model", "BAAI/bge-large-en-v1.5", "--runner", "pooling"]
        assert containers[name]["image"] in ("vllm/vllm-openai:latest", "rocm/vllm:latest")
    env = {e["name"]: e["value"] for e in containers["rag-assistant-runtime"]["env"]}
    assert env["HETC_STAGE_ENDPOINT_RETRIEVE_EMBED"] == "http://rag-assistant-retrieve-embed:8000/v1"
    assert env["HETC_STAGE_ENDPOINT_REMEMBER_EMBED"] == "http://rag-assistant-remember-embed:8000/v1"


def test_the_kubernetes_export_creates_the_guard_server(guarded_bundle):
    containers = _containers(kubernetes_manifests(plan_of(guarded_bundle)))
    guard = containers["guarded-chat-screen"]
    assert guard["args"][:2] == ["--model", "meta-llama/Llama-Guard-3-1B"] and "--runner" not in guard["args"]
    env = {e["name"]: e["value"] for e in containers["guarded-chat-runtime"]["env"]}
    assert env["HETC_ENDPOINT_GUARD"] == "http://guarded-chat-screen:8000/v1"


def test_the_kubernetes_export_creates_the_rerank_server(reranked_bundle):
    containers = _containers(kubernetes_manifests(plan_of(reranked_bundle)))
    args = containers["rag-reranked-retrieve-rerank"]["args"]
    assert args[:4] == ["--model", "BAAI/bge-reranker-v2-m3", "--runner", "pooling"]
    # the cross-encoder's context from its config (max_position_embeddings 8194)
    assert args[args.index("--max-model-len") + 1] == "8194"
    env = {e["name"]: e["value"] for e in containers["rag-reranked-runtime"]["env"]}
    assert env["HETC_STAGE_ENDPOINT_RETRIEVE_RERANK"] == "http://rag-reranked-retrieve-rerank:8000/v1"


def test_engine_servers_get_their_models_context_as_max_model_len(rag_bundle, guarded_bundle):
    embed = _containers(kubernetes_manifests(plan_of(rag_bundle)))["rag-assistant-retrieve-embed"]["args"]
    assert embed[embed.index("--max-model-len") + 1] == "512"  # bge-large-en-v1.5: max_position_embeddings
    guard = _containers(kubernetes_manifests(plan_of(guarded_bundle)))["guarded-chat-screen"]["args"]
    assert guard[guard.index("--max-model-len") + 1] == "131072"  # Llama-Guard-3-1B's config
    chat = _containers(kubernetes_manifests(plan_of(guarded_bundle)))["guarded-chat-answer-llm-decode"]["args"]
    assert "--max-model-len" in chat  # an LLM node's prompt plus answer, as before


def test_a_spec_that_overrides_the_models_context_gets_that_max_model_len(tmp_path):
    # the spec's figure, not the preset's, reaches the server: plan.json carries the model's effective context
    import yaml
    from stand_ins.served_graphs import EXAMPLES, compile_spec_file

    spec = yaml.safe_load((EXAMPLES / "guarded-chat.yaml").read_text())
    spec["models"]["guard"]["overrides"] = {"max_context": 4096}
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    bundle = compile_spec_file(tmp_path / "agent.yaml", tmp_path / "bundle")
    assert stages_of(bundle)["screen"]["model"]["max_context"] == 4096
    guard = _containers(kubernetes_manifests(plan_of(bundle)))["guarded-chat-screen"]["args"]
    assert guard[guard.index("--max-model-len") + 1] == "4096"  # the preset says 131072


def test_each_engine_stage_calls_its_own_server(rag_bundle, llm, tmp_path, monkeypatch):
    other = StandInLLM(embedding_dim=EMBED_DIM)
    with other:
        monkeypatch.setenv("HETC_STAGE_ENDPOINT_REMEMBER_EMBED", other.url)
        router = local_router(rag_bundle, rag_bindings(tmp_path / "bind.yaml", llm.url))
        llm.embedding_requests.clear()
        asyncio.run(router.run(QUESTION))
    assert len(llm.embedding_requests) == 1 and len(other.embedding_requests) == 1


# ------------------------------------------------------------------------------------------------ speech


def test_the_speech_call_asks_kokoro_fastapi_by_its_names(monkeypatch):
    # Kokoro-FastAPI answers only to its OpenAI model names ("kokoro") and its own voices: the bindings'
    # default model name and the call's voice are those, and the spoken audio goes on base64-encoded
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = []

    class Speech(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"RIFF")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Speech)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        plan = {"stages": [{"id": "tts", "node": "tts", "kind": "tts", "model": {"id": "voice", "name": "kokoro-82m"},
                            "service": {"api": SPEECH_API}}], "edges": []}
        monkeypatch.setenv("HETC_ENDPOINT_VOICE", f"http://127.0.0.1:{server.server_address[1]}/v1")
        model = validate_bindings(plan, None)["models"]["voice"]
        values = asyncio.run(ENGINE_CALLS[SPEECH_API](model, plan["stages"][0], [{"text": "hello"}], ["r1"], 5.0))
    finally:
        server.shutdown()
    assert bodies == [("/v1/audio/speech", {"model": "kokoro", "input": "hello", "voice": "af_heart",
                                            "response_format": "wav"})]
    assert values == [{"text": "hello", "audio_base64": base64.b64encode(b"RIFF").decode()}]
