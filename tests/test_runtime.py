"""hetc.runtime in-process (the `--local` router): the CPU help-desk example end to end against the LLM
stand-in and the example's HTTP search tool; the bindings' located errors; the generated retrieval kernel."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from stand_ins.helpdesk import EXAMPLE, compile_example, start_tool_server, write_bindings
from stand_ins.openai_llm import StandInLLM

from hetc.cli import main
from hetc.errors import HetcError
from hetc.runtime.bindings import validate_bindings
from hetc.runtime.kernels import VectorSearch
from hetc.runtime.local import local_router
from hetc.runtime.router import RequestError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return compile_example(tmp_path_factory.mktemp("helpdesk") / "bundle")


@pytest.fixture(scope="module")
def servers():
    tool = start_tool_server()
    with StandInLLM() as llm:
        yield llm, tool
    tool.shutdown()


@pytest.fixture()
def router(bundle, servers, tmp_path):
    llm, tool = servers
    return local_router(bundle, write_bindings(tmp_path / "bind.yaml", llm.url, tool.server_address[1]))


def run(router, text, **kwargs):
    events = []
    result = asyncio.run(router.run(text, emit=events.append, **kwargs))
    return result, events


def test_small_talk_takes_the_branch_the_code_node_returns(router):
    result, _ = run(router, "hello")
    assert result["outputs"] == {"answer": "Hello! Ask me about accounts, billing, VPN or e-mail."}
    assert "agent.decode" not in result["visits"] and "retrieve.search" not in result["visits"]


def test_question_fans_out_joins_and_calls_the_tool_the_model_asks_for(router, servers):
    llm, _ = servers
    llm.requests.clear()
    result, events = run(router, "How do I reset my password?")
    # retrieval and the status tool both ran (fan-out) and joined at the LLM: 3 articles in its prompt
    assert result["visits"]["retrieve.search"] == 1 and result["visits"]["status.lookup"] == 1
    assert result["outputs"]["answer"] == "stand-in answer: 1 tool results, 3 articles."
    assert result["loops"] == {"search.lookup->agent.prefill": 1}
    first_prompt = llm.requests[0]["messages"][0]["content"]
    assert "[kb-01]" in first_prompt and "operational" in first_prompt
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["search"]
    tool_message = llm.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == llm.requests[1]["messages"][-2][
        "tool_calls"][0]["id"]
    tokens = "".join(e["text"] for e in events if e["event"] == "token")
    assert tokens == result["outputs"]["answer"]


def test_a_tool_that_always_asks_for_more_stops_at_max_iterations(router, servers):
    llm, _ = servers
    llm.requests.clear()
    result, _ = run(router, "tell me everything about the VPN")
    assert result["loops"] == {"search.lookup->agent.prefill": 3}
    assert result["visits"]["search.lookup"] == 3 and result["visits"]["agent.decode"] == 4
    assert [bool(r.get("tools")) for r in llm.requests] == [True, True, True, False]  # last turn: no tools
    assert result["outputs"]["answer"] == "stand-in answer: 3 tool results, 3 articles."


def test_deadline_ends_a_request_with_a_structured_error(router):
    with pytest.raises(RequestError) as caught:
        run(router, "slow question SLEEP=4", deadline_ms=2000)
    error = caught.value.error
    assert error["type"] == "deadline_exceeded" and error["stage"] == "agent.decode"


def test_a_failing_tool_is_retried_then_reported(bundle, servers, tmp_path):
    llm, _ = servers
    dead = {"http": "http://127.0.0.1:9/search", "timeout_ms": 100, "retries": 1}  # port 9: nothing listens
    router = local_router(bundle, write_bindings(tmp_path / "b.yaml", llm.url, 9, search=dead))
    with pytest.raises(RequestError) as caught:
        run(router, "How do I reset my password?")
    assert caught.value.error["type"] == "tool_failed" and caught.value.error["stage"] == "search.lookup"


def test_retrieval_runs_the_bundles_kernel_and_equals_numpy(bundle):
    sys.path.insert(0, str(EXAMPLE))
    from helpdesk import embed

    matrix = np.load(EXAMPLE / "index" / "vectors.npy")
    search = VectorSearch(bundle, matrix)
    assert search.symbol.startswith("hetc_search_d32_k3")
    queries = np.stack([embed(q) for q in ("reset password", "vpn keeps disconnecting", "invoice billing")])
    indices, scores = search.search(queries)
    cosine = queries @ (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).T
    cosine /= np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.argsort(-cosine, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(cosine, expected, axis=1), rtol=1e-5)


def serve_in_thread(router=None, app=None):
    """The --local HTTP server (uvicorn; or another ASGI app) on a free loopback port: (base URL, server)."""
    import threading
    import time

    import uvicorn

    from hetc.runtime.http_app import starlette_app

    server = uvicorn.Server(uvicorn.Config(app or starlette_app(router), host="127.0.0.1", port=0,
                                          log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server


def test_http_api_json_streaming_and_metrics(router):
    import requests

    base, server = serve_in_thread(router)
    try:
        answer = requests.post(f"{base}/v1/agent", json={"input": "How do I reset my password?"},
                               headers={"X-Request-Id": "req-42"}, timeout=30)
        assert answer.status_code == 200 and answer.json()["request_id"] == "req-42"
        with requests.post(f"{base}/v1/agent", json={"input": "VPN help", "stream": True}, stream=True,
                           timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines(decode_unicode=True) if line]
        events = [line.split(": ", 1)[1] for line in lines if line.startswith("event: ")]
        assert "token" in events and events[-1] == "result"
        bad = requests.post(f"{base}/v1/agent", json={"input": 3}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "bad_request"
        metrics = requests.get(f"{base}/metrics", timeout=30).text
    finally:
        server.should_exit = True
    assert 'hetc_stage_seconds_bucket{le="30.0",stage="agent.decode"}' in metrics  # the SLO's 30 s target
    assert 'hetc_stage_visits_per_request_count{stage="search.lookup"}' in metrics
    assert 'hetc_requests_total{outcome="ok"}' in metrics


def test_bindings_errors_are_located_and_exit_2(bundle, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hetc-bindings: 1\nmodels:\n  chat: {endpoint: ftp://x}\nnodes:\n"
                   "  search: {http: http://127.0.0.1:1/s, timout_ms: 3}\n  nowhere: {callable: a:b}\n")
    with pytest.raises(HetcError) as caught:
        validate_bindings(json.loads((bundle / "plan.json").read_text()), bad)
    messages = [str(d) for d in caught.value.diagnostics]
    assert any(m.startswith(f"{bad}:3:") and "endpoint" in m for m in messages)
    assert any(m.startswith(f"{bad}:5:") and "unknown key 'timout_ms'" in m for m in messages)
    assert any(m.startswith(f"{bad}:6:") and "'nowhere'" in m for m in messages)
    assert any("'retrieve'" in m and "no binding" in m for m in messages)
    with pytest.raises(HetcError) as unbound:  # no file at all: every missing binding is named
        validate_bindings(json.loads((bundle / "plan.json").read_text()), None)
    missing = " ".join(str(d) for d in unbound.value.diagnostics)
    assert "model 'chat' has no endpoint" in missing and "HETC_ENDPOINT_CHAT" in missing
    assert all(f"'{node}'" in missing for node in ("search", "status", "retrieve", "triage"))
    with pytest.raises(SystemExit) as exit_code:
        main(["serve", str(bundle), "--bind", str(bad), "--local"])
    err = capsys.readouterr().err
    assert exit_code.value.code == 2 and "Traceback" not in err and "timout_ms" in err


def test_every_preset_names_a_hugging_face_repo():
    from hetc.model.models import HF_REPOS, PRESETS, hf_repo

    assert set(HF_REPOS) == set(PRESETS)
    assert hf_repo("llama3-70b") == "meta-llama/Meta-Llama-3-70B-Instruct"
    assert all(source.startswith(f"https://huggingface.co/{repo}") for repo, source in HF_REPOS.values())


def test_deploy_ray_names_the_runtime(bundle):
    from hetc.bundle.ray import serve_config

    config = serve_config(json.loads((bundle / "plan.json").read_text()))
    assert config["applications"][0]["import_path"] == "hetc.runtime.serve:build_app"
    assert Path(__file__).parents[1].joinpath("hetc", "runtime", "serve.py").is_file()


VOICE_SPEC = """\
hetc: 1
name: cpu-voice
slo: {latency_ms: 120000}
traffic: {requests_per_s: 0.1}
models:
  asr: {preset: whisper-large-v3}
  chat: {preset: llama-3-8b}
  voice: {preset: kokoro-82m}
nodes:
  mic: {kind: input, produces: audio, audio_seconds: 2}
  stt: {kind: speech_to_text, model: asr}
  llm: {kind: llm, model: chat, input_tokens: 256, output_tokens: 16}
  tts: {kind: text_to_speech, model: voice, input_tokens: 32, audio_seconds: 2}
  speaker: {kind: output}
edges:
  - mic -> stt -> llm -> tts -> speaker
hardware: {pool: [intel-xeon-8480]}
"""


def test_speech_in_and_out_through_the_audio_api(tmp_path, servers):
    import base64

    from hetc.compiler import CompileOptions, compile_spec, write

    llm, _ = servers
    spec = tmp_path / "voice.yaml"
    spec.write_text(VOICE_SPEC)
    write(compile_spec(str(spec), CompileOptions()), tmp_path / "bundle")
    bind = tmp_path / "bind.yaml"
    bind.write_text("hetc-bindings: 1\nmodels:\n" + "".join(
        f"  {m}: {{endpoint: \"{llm.url}\"}}\n" for m in ("asr", "chat", "voice")))
    router = local_router(tmp_path / "bundle", bind)
    audio = base64.b64encode(b"\x00\x01" * 500).decode()
    result, _ = run(router, audio)
    assert llm.requests[-1]["messages"][0]["content"] == "heard 1000 bytes"  # the transcript reached the LLM
    spoken = base64.b64decode(result["audio"]["speaker"])
    assert spoken.startswith(b"RIFF") and spoken[4:].decode() == result["outputs"]["speaker"]
    with pytest.raises(RequestError) as caught:
        run(router, "not base64 audio!")
    assert caught.value.error["type"] == "bad_input" and caught.value.error["stage"] == "stt"


def test_hetc_serve_local_prints_where_it_listens_and_answers(bundle, servers, tmp_path):
    import subprocess

    import requests

    llm, tool = servers
    bind = write_bindings(tmp_path / "bind.yaml", llm.url, tool.server_address[1])
    process = subprocess.Popen([sys.executable, "-m", "hetc.cli", "serve", str(bundle), "--bind", str(bind),
                                "--local", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()  # blocks until the server listens (or the process ends)
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[2]
        answer = requests.post(url, json={"input": "hi"}, timeout=30).json()
        assert answer["outputs"]["answer"].startswith("Hello!")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pd_router_runs_prefill_then_streams_decode():
    """The Kubernetes export's P/D router between two OpenAI servers: the runtime's client cannot tell."""
    from hetc.runtime.llm_client import chat_stream
    from hetc.runtime.pd_proxy import app

    with StandInLLM() as prefill, StandInLLM() as decode:
        base, server = serve_in_thread(app=app(prefill.url, decode.url))
        try:
            model = {"endpoint": f"{base}/v1", "model": "meta-llama/Meta-Llama-3-8B-Instruct"}

            async def ask():
                return [e async for e in chat_stream(model, [{"role": "user", "content": "hi"}], [], 10, "rid-1")]

            events = asyncio.run(ask())
        finally:
            server.should_exit = True
    assert [p["max_tokens"] for p in prefill.requests] == [1] and prefill.requests[0]["stream"] is False
    assert decode.requests[0]["stream"] is True and "max_tokens" not in decode.requests[0]
    text = "".join(e["token"] for e in events if "token" in e)
    assert text == "stand-in answer: 0 tool results, 0 articles."
