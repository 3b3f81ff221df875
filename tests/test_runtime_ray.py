"""hetc.runtime on Ray Serve for real: the CPU help-desk bundle end to end through `build_app` (one Ray
start for the module), and a replica killed mid-run: Ray Serve restarts it and every request in flight
completes or ends with a structured error, none hangs. Then the stages an engine serves for the runtime, each
example as its own Serve application next to the help desk: the RAG example's GPU embed stage (the vector
reaches the search from the engine) and its reranker and guarded-chat's Llama Guard screen (a safe and an unsafe question);
every engine is the OpenAI stand-in. The RAG application reranks its retrieval with a cross-encoder (the
stand-in's rerank API), so the context reaches the LLM in the reranker's order."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time

import pytest
import requests
from stand_ins import served_graphs
from stand_ins.helpdesk import compile_example, start_tool_server, write_bindings
from stand_ins.openai_llm import StandInLLM

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

REQUEST_TIMEOUT_S = 90  # bounds every HTTP call of these tests: a hang fails instead of blocking the suite


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def serve_base():
    """One Ray instance and Serve proxy for the module (logical CPUs: the help desk and one more application
    at 0.1 CPU per replica)."""
    ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield f"http://127.0.0.1:{start_serve_on_a_free_port()}"
    finally:
        serve.shutdown()
        ray.shutdown()


def start_serve_on_a_free_port(attempts: int = 3) -> int:
    """Serve's proxy on a port free a moment ago: Ray's own processes take ephemeral ports too, and one of them
    may take it first ("Failed to bind to address"), so a few ports are tried."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
        except Exception as exc:  # ray.exceptions.RayTaskError wrapping the proxy's RuntimeError
            if "Failed to bind" not in str(exc) or attempt == attempts:
                raise
            serve.shutdown()
        else:
            return port
    raise ValueError(f"attempts must be at least 1, got {attempts}")


@pytest.fixture(scope="module")
def app(serve_base, tmp_path_factory):
    from hetc.runtime.serve import build_app

    base = tmp_path_factory.mktemp("ray-helpdesk")
    bundle = compile_example(base / "bundle")
    tool = start_tool_server()
    with StandInLLM() as llm:
        bindings = write_bindings(base / "bind.yaml", llm.url, tool.server_address[1])
        serve.run(build_app({"plan": str(bundle), "bind": str(bindings), "local_resources": True}),
                  name="hetc", route_prefix="/")
        yield serve_base, llm
    tool.shutdown()


def ask(base: str, text: str, **extra) -> requests.Response:
    return requests.post(f"{base}/v1/agent", json={"input": text, **extra}, timeout=REQUEST_TIMEOUT_S)


def test_the_example_runs_end_to_end_on_ray_serve(app):
    base, _ = app
    answer = ask(base, "How do I reset my password?").json()
    assert answer["outputs"] == {"answer": "stand-in answer: 1 tool results, 3 articles."}
    assert answer["visits"]["retrieve.search"] == 1 and answer["visits"]["status.lookup"] == 1  # fan-out, join
    looped = ask(base, "tell me everything about the VPN").json()
    assert looped["loops"] == {"search.lookup->agent.prefill": 3} and looped["visits"]["agent.decode"] == 4
    small = ask(base, "hi").json()  # the other branch
    assert small["outputs"]["answer"].startswith("Hello!") and "agent.decode" not in small["visits"]


def test_tokens_stream_as_server_sent_events(app):
    base, _ = app
    with requests.post(f"{base}/v1/agent", json={"input": "VPN help", "stream": True}, stream=True,
                       timeout=REQUEST_TIMEOUT_S) as response:
        events = []
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                events.append(line[7:])
            elif line.startswith("data: ") and events[-1] == "result":
                result = json.loads(line[6:])
    tokens = events.count("token")
    assert tokens >= 3 and events[-1] == "result" and result["outputs"]["answer"].startswith("stand-in answer")
    metrics = requests.get(f"{base}/metrics", timeout=REQUEST_TIMEOUT_S).text
    assert 'hetc_stage_batch_size_count{stage="retrieve.search"}' in metrics  # the @serve.batch stage


def _replica(deployment: str):
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["name"].startswith(f"SERVE_REPLICA::hetc#{deployment}#"):
            return ray.get_actor(entry["name"], namespace=entry["namespace"])
    raise AssertionError(f"no replica of {deployment}")


def test_a_killed_replica_is_restarted_and_no_request_hangs(app):
    base, _ = app
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(ask, base, f"question {i} about e-mail SLEEP=2") for i in range(4)]
        time.sleep(1.0)  # the requests are in the LLM stage (the stand-in sleeps before answering)
        assert not any(f.done() for f in futures)
        ray.kill(_replica("agent-decode"), no_restart=True)
        ray.kill(_replica("search-lookup"), no_restart=True)
        responses = [f.result(timeout=REQUEST_TIMEOUT_S) for f in futures]
    for response in responses:
        body = response.json()
        if response.status_code == 200:
            assert body["outputs"]["answer"].startswith("stand-in answer")
        else:
            assert body["error"]["type"] in ("stage_unavailable", "deadline_exceeded"), body
            assert body["error"]["request_id"]
    deadline = time.monotonic() + REQUEST_TIMEOUT_S  # Ray Serve brings the replicas back
    while time.monotonic() < deadline:
        response = ask(base, "How do I reset my password?")
        if response.status_code == 200:
            break
        time.sleep(1)
    assert response.status_code == 200 and response.json()["loops"] == {"search.lookup->agent.prefill": 1}


def _application(serve_base: str, name: str, bundle, bindings):
    """An example's bundle as its own Serve application under /<name>; deleted after its test."""
    from hetc.runtime.serve import build_app

    serve.run(build_app({"plan": str(bundle), "bind": str(bindings), "local_resources": True}),
              name=name, route_prefix=f"/{name}")
    return f"{serve_base}/{name}"


@pytest.fixture()
def rag(serve_base, tmp_path):
    """The RAG example with a cross-encoder reranking its retrieval (the embed and rerank stages' engines)."""
    base = tmp_path
    bundle = served_graphs.compile_reranked(base)
    with StandInLLM(embedding_dim=served_graphs.EMBED_DIM) as llm:
        yield _application(serve_base, "rag", bundle, served_graphs.reranked_bindings(base / "bind.yaml",
                                                                                     llm.url)), llm, base
        serve.delete("rag")


@pytest.fixture()
def guarded(serve_base, tmp_path):
    base = tmp_path
    bundle = served_graphs.compile_example("guarded-chat", base / "bundle")
    with StandInLLM() as llm:
        yield _application(serve_base, "guarded", bundle, served_graphs.guarded_bindings(base / "bind.yaml",
                                                                                         llm.url)), llm
        serve.delete("guarded")


def test_the_engine_vector_reaches_the_search_and_the_reranker_orders_the_context(rag):
    url, llm, folder = rag
    question = "Which documents describe the refund process?"
    response = ask(url, question)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["visits"]["retrieve.embed"] == 1 and answer["visits"]["retrieve.search"] == 1
    assert answer["visits"]["retrieve.rerank"] == 1
    assert [question] in [r["input"] for r in llm.embedding_requests]  # the embed stage asked the engine
    # the search ranked the index for the engine's vector (no embed callable is bound): the cross-encoder got
    # numpy's top 8 for that vector, in order, and the LLM's context holds them in the cross-encoder's order
    searched = served_graphs.expected_top(question, folder, 8)
    (rerank,) = llm.rerank_requests
    assert rerank["query"] == question and rerank["documents"] == [served_graphs.document_text(i) for i in searched]
    prompt = next(r for r in llm.requests if "messages" in r)["messages"][0]["content"]
    context = [line.split("]")[0][1:] for line in prompt.split("Context:\n")[1].splitlines()]
    assert context == served_graphs.reranked_order(question, folder, 8) != searched


def test_a_safe_question_is_answered_and_an_unsafe_one_refused(guarded):
    url, llm = guarded
    safe = ask(url, "How do I bake bread?")
    assert safe.status_code == 200 and safe.json()["outputs"] == {
        "answer": "stand-in answer: 0 tool results, 0 articles."}
    llm.requests.clear()
    unsafe = ask(url, "UNSAFE question")
    assert unsafe.status_code == 200, unsafe.text
    body = unsafe.json()
    assert body["refused"] == {"stage": "screen", "node": "screen", "verdict": "unsafe",
                               "categories": ["S1", "S10"]}
    assert body["outputs"] == {} and "answer_llm.decode" not in body["visits"]
    assert [r["model"] for r in llm.requests] == ["meta-llama/Llama-Guard-3-1B"]  # the chat model never ran
