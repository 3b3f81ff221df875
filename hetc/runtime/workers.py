"""What one stage does for one request: the same code in-process (`--local`) and in a Ray Serve replica.

A stage receives a payload (request id, node, the values its in-edges delivered, the seconds left before the
request's deadline, and kind-specific fields) and returns a value: a dict with at least `text`. Failures are
returned as `{"error": {...}}` (structured, serialisable), never raised across the process boundary.

- prefill: builds the LLM conversation (first turn from the inputs, later turns add tool results);
- decode: calls the model's OpenAI-compatible chat completions API with the tools the router offers,
  streaming tokens; returns the text and the tool calls the model made;
- tool_lookup: the tool's HTTP endpoint or Python callable, with a timeout and retries;
- a stage an engine serves whose plan entry names the engine API the runtime calls (service `api`: an embed
  stage an engine serves, a guardrail, a reranker): that call (engine_stages.py);
- embed (on a CPU stage, which the plan gives a pooling kernel): the bound `embed` callable returns token
  vectors; the bundle's pooling + L2-normalisation kernel makes them one vector (`embedding`);
- vector_search: ranks the bound index with the bundle's kernel, for the query vector the node's embed stage
  produced (by its engine or the CPU kernel), else the one the bound `embed` callable returns;
- compute / memory_store: the bound callable (it may return the branch it takes);
- encoder (speech to text) and tts: the model server's OpenAI audio API (audio.py);
- every other kind runs inside an engine or its node's main stage and passes its inputs on.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hetc.errors import HetcError
from hetc.runtime.llm_client import LLMError, chat_stream
from hetc.runtime.text import clean_text

log = logging.getLogger("hetc.runtime")

# A tool call slower than this multiple of the spec's p99 round trip is treated as lost and retried: the
# spec's figure is the planned tail, so three times it is an outage, not queueing.
TOOL_TIMEOUT_P99_FACTOR = 3.0
MIN_TOOL_TIMEOUT_MS = 250.0  # floor for tools whose spec claims sub-millisecond round trips
RETRY_BACKOFF_S = 0.05  # doubled on each retry


class StageFailure(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    def as_dict(self, stage: str) -> dict[str, str]:
        return {"type": self.kind, "stage": stage, "message": clean_text(str(self))}


def merge_inputs(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The values of a join as one: texts in edge order, documents and tool results concatenated."""
    merged: dict[str, Any] = {"text": "\n\n".join(v["text"] for v in inputs if v.get("text"))}
    audio = [v["audio_base64"] for v in inputs if v.get("audio_base64")]
    if audio:
        merged["audio_base64"] = audio[-1]
    documents = [d for v in inputs for d in v.get("documents", [])]
    if documents:
        merged["documents"] = documents
    results = [r for v in inputs for r in ([v["tool_result"]] if "tool_result" in v else [])]
    if results:
        merged["tool_results"] = results
    return merged


def load_callable(spec: str, python_path: list[str]):
    module_name, _, attr = spec.partition(":")
    for folder in reversed(python_path):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise StageFailure("binding_failed", f"cannot load {spec}: {type(exc).__name__}: {exc}") from None
    if not callable(function):
        raise StageFailure("binding_failed", f"{spec} is not callable")
    return function


async def call_bound(function, *args: Any, **kwargs: Any) -> Any:
    """Await an async callable; run a plain one in a thread so it does not stall the event loop."""
    if inspect.iscoroutinefunction(function):
        return await function(*args, **kwargs)
    return await asyncio.to_thread(function, *args, **kwargs)


def _as_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, sort_keys=True, ensure_ascii=False)


class StageWorker:
    """One stage of a plan with its bindings. Cheap to build; bindings load on first use."""

    def __init__(self, stage: dict[str, Any], bindings: dict[str, Any], bundle_dir: str):
        self.stage, self.bindings, self.bundle = stage, bindings, Path(bundle_dir)
        self.node_binding = bindings["nodes"].get(stage["node"], {})
        self._callable = None
        self._search = None
        self._pool = None
        self._documents: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------- entry points

    async def call(self, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        async for event in self.stream(payload):
            if "result" in event:
                result = event["result"]
        return result

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Events: {"token": text} while an LLM decodes, then {"result": value or {"error": ...}}."""
        stage_id, started = self.stage["id"], time.perf_counter()
        try:
            if self.stage["kind"] == "decode":
                result = None
                async for event in self._decode(payload):
                    if "token" in event:
                        yield event
                    else:
                        result = event["result"]
            else:
                result = await self._run(payload)
        except StageFailure as failure:
            result = {"error": failure.as_dict(stage_id)}
        except Exception as exc:  # a bug in a bound callable or here: a structured error, not a hang
            log.exception("request %s stage %s crashed", payload.get("request_id"), stage_id)
            result = {"error": StageFailure("stage_crashed", f"{type(exc).__name__}: {exc}").as_dict(stage_id)}
        log.info("request %s stage %s %s in %.1f ms", payload.get("request_id"), stage_id,
                 "failed" if "error" in result else "done", (time.perf_counter() - started) * 1000)
        yield {"result": result}

    async def call_batch(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A batch the plan sized (Ray Serve's @serve.batch): retrieval ranks all queries in one kernel call,
        an embed stage pools all sequences in one (or sends them to its engine in one request)."""
        batched = self._batched()
        if batched is not None and len(payloads) > 1:
            try:
                return await batched(payloads)
            except StageFailure as failure:
                return [{"error": failure.as_dict(self.stage["id"])}] * len(payloads)
        return list(await asyncio.gather(*(self.call(p) for p in payloads)))

    def _batched(self):
        """The call that serves a whole batch at once, or None (each payload then runs on its own)."""
        if self._engine_api() is not None:
            return self._engine_call
        if self.stage["kind"] == "vector_search":
            return self._retrieve
        return self._embed if self.stage["kind"] == "embed" and self._pools() else None

    # ------------------------------------------------------------------------------------------ kinds

    async def _run(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self._engine_api() is not None:
            return (await self._engine_call([payload]))[0]
        kind = self.stage["kind"]
        if kind == "prefill":
            return self._prefill(payload)
        if kind in ("encoder", "tts") and self._speech_model() is not None:
            return await self._audio(payload)
        if kind == "tool_lookup":
            return await self._tool(payload)
        if kind == "vector_search":
            return (await self._retrieve([payload]))[0]
        if kind == "embed" and self._pools():
            return (await self._embed([payload]))[0]
        if kind in ("compute", "memory_store") and self.node_binding.get("callable"):
            return await self._code(payload)
        return merge_inputs(payload["inputs"])

    def _prefill(self, payload: dict[str, Any]) -> dict[str, Any]:
        merged = merge_inputs(payload["inputs"])
        messages = list(payload.get("messages") or [])
        if not messages:
            content = merged["text"]
            if merged.get("documents"):
                context = "\n".join(f"[{d['id']}] {d['text']}" for d in merged["documents"])
                content = f"{content}\n\nContext:\n{context}"
            messages.append({"role": "user", "content": content})
        else:
            for result in merged.get("tool_results", []):
                messages.append({"role": "tool", "tool_call_id": result["tool_call_id"], "content": result["content"]})
            if not merged.get("tool_results") and merged["text"]:
                messages.append({"role": "user", "content": merged["text"]})
        return {"text": merged["text"], "messages": messages}

    def _model(self) -> dict[str, Any]:
        """The model binding; a stage with an engine server of its own (the Kubernetes export's per-stage
        HETC_STAGE_ENDPOINT_<STAGE>) calls that one."""
        model = self.bindings["models"].get((self.stage["model"] or {}).get("id", ""))
        if not model or not model.get("endpoint"):
            raise StageFailure("unbound", f"model of stage {self.stage['id']} has no endpoint binding")
        own = self.bindings.get("stage_endpoints", {}).get(self.stage["id"])
        return {**model, "endpoint": own} if own else model

    def _engine_api(self) -> str | None:
        """The engine API the plan says this stage calls per request (service `api`), or None."""
        return self.stage["service"].get("api")

    async def _engine_call(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from hetc.runtime.engine_stages import ENGINE_CALLS

        call = ENGINE_CALLS.get(self._engine_api())
        if call is None:
            raise StageFailure("bad_plan", f"stage {self.stage['id']}: unknown engine API {self._engine_api()!r}")
        values = [merge_inputs(p["inputs"]) for p in payloads]
        try:
            return await call(self._model(), self.stage, values, [p.get("request_id", "") for p in payloads],
                              max(p["deadline_s"] for p in payloads))
        except LLMError as exc:  # a speech server's error says its own kind (hetc/runtime/audio.py)
            raise StageFailure(getattr(exc, "kind", "llm_failed"), str(exc)) from None

    def _speech_model(self) -> str | None:
        """'stt' for a speech-to-text encoder (an encoder-decoder model), 'tts' for a speech model, else None."""
        from hetc.model.models import resolve_preset

        preset = resolve_preset((self.stage["model"] or {}).get("name", ""))
        kind = preset.kind if preset is not None else ""
        if self.stage["kind"] == "encoder" and kind == "encoder_decoder":
            return "stt"
        return "tts" if self.stage["kind"] == "tts" and kind == "tts" else None

    async def _audio(self, payload: dict[str, Any]) -> dict[str, Any]:
        import base64

        from hetc.runtime.audio import AudioError, decode_audio, speak, transcribe

        model, merged = self._model(), merge_inputs(payload["inputs"])
        headers = {"X-Request-Id": payload.get("request_id", "")}
        try:
            if self._speech_model() == "stt":
                audio = next((v["audio_base64"] for v in payload["inputs"] if "audio_base64" in v), merged["text"])
                try:
                    data = decode_audio(audio)
                except AudioError as exc:
                    raise StageFailure("bad_input", str(exc)) from None
                return {"text": await transcribe(model, data, payload["deadline_s"], headers)}
            spoken = await speak(model, merged["text"], payload["deadline_s"], headers)
        except AudioError as exc:
            raise StageFailure("speech_failed", str(exc)) from None
        return {"text": merged["text"], "audio_base64": base64.b64encode(spoken).decode()}

    async def _decode(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        model = self._model()
        messages = payload.get("messages") or [{"role": "user", "content": merge_inputs(payload["inputs"])["text"]}]
        content, tool_calls = [], []
        try:
            async for event in chat_stream(model, messages, payload.get("tools") or [], payload["deadline_s"],
                                           payload.get("request_id", "")):
                if "token" in event:
                    content.append(event["token"])
                    yield event
                else:
                    tool_calls = event["tool_calls"]
        except LLMError as exc:
            raise StageFailure("llm_failed", str(exc)) from None
        text = "".join(content)
        assistant: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            assistant["tool_calls"] = tool_calls
        yield {"result": {"text": text, "messages": [*messages, assistant], "tool_calls": tool_calls}}

    async def _tool(self, payload: dict[str, Any]) -> dict[str, Any]:
        merged = merge_inputs(payload["inputs"])
        call = next((v["tool_call"] for v in payload["inputs"] if "tool_call" in v), None)
        arguments = call["arguments"] if call else {"query": merged["text"]}
        binding = self.node_binding
        service = self.stage["service"]
        p99 = service.get("latency_p99_ms") or service.get("latency_ms") or MIN_TOOL_TIMEOUT_MS
        timeout_s = (binding.get("timeout_ms") or max(TOOL_TIMEOUT_P99_FACTOR * p99, MIN_TOOL_TIMEOUT_MS)) / 1000
        deadline = time.monotonic() + payload["deadline_s"]
        last_error = "no attempt"
        for attempt in range(int(binding.get("retries", 0)) + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                result = await asyncio.wait_for(self._tool_once(arguments, payload), min(timeout_s, left))
                content = _as_text(result)
                tool_result = {"tool_call_id": call["id"] if call else "", "name": call["name"] if call else "",
                               "content": content}
                return {"text": content, "tool_result": tool_result, "attempts": attempt + 1}
            except TimeoutError:
                last_error = f"no answer within {min(timeout_s, left) * 1000:.0f} ms"
            except _RetryableToolError as exc:
                last_error = str(exc)
            log.warning("request %s stage %s attempt %d failed: %s", payload.get("request_id"), self.stage["id"],
                        attempt + 1, last_error)
            await asyncio.sleep(min(RETRY_BACKOFF_S * 2**attempt, max(deadline - time.monotonic(), 0)))
        raise StageFailure("tool_failed", f"tool {self.stage['node']!r}: {last_error}")

    async def _tool_once(self, arguments: dict[str, Any], payload: dict[str, Any]) -> Any:
        binding = self.node_binding
        if binding.get("callable"):
            self._callable = self._callable or load_callable(binding["callable"], self.bindings["python_path"])
            return await call_bound(self._callable, **arguments)
        import aiohttp

        headers = {"X-Request-Id": payload.get("request_id", "")}
        try:
            async with aiohttp.ClientSession() as session, \
                    session.post(binding["http"], json=arguments, headers=headers) as response:
                body = await response.text()
                if response.status >= 500:
                    raise _RetryableToolError(f"HTTP {response.status}")
                if response.status >= 400:
                    raise StageFailure("tool_failed", f"tool {self.stage['node']!r}: HTTP {response.status}: "
                                                      f"{clean_text(body, 120)}")
        except aiohttp.ClientError as exc:
            raise _RetryableToolError(f"{type(exc).__name__}") from None
        try:
            return json.loads(body)
        except ValueError:
            return body

    def _load_index(self) -> None:
        import numpy as np

        from hetc.runtime.kernels import VectorSearch

        binding = self.node_binding
        matrix = np.load(binding["vectors"], allow_pickle=False)
        lines = Path(binding["documents"]).read_text(encoding="utf-8").splitlines()
        self._documents = [json.loads(line) for line in lines if line.strip()]
        self._search = _bundle_kernel(VectorSearch, self.bundle, matrix,
                                      symbols=self.stage.get("kernel_symbols") or None)
        if binding.get("embed"):  # not needed when the node's embed stage gives every query its vector
            self._callable = load_callable(binding["embed"], self.bindings["python_path"])

    async def _retrieve(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import numpy as np

        if self._search is None:
            self._load_index()
        texts = [merge_inputs(p["inputs"])["text"] for p in payloads]
        queries = []
        for payload, text in zip(payloads, texts, strict=True):
            embedded = next((v["embedding"] for v in payload["inputs"] if "embedding" in v), None)
            if embedded is None and self._callable is None:
                raise StageFailure("unbound", f"node {self.stage['node']!r}: no query vector (its embed stage gave "
                                              "none) and no 'embed' callable bound")
            query = embedded if embedded is not None else await call_bound(self._callable, text)
            queries.append(np.asarray(query, dtype=np.float32))
        if any(q.shape != (self._search.matrix.shape[1],) for q in queries):
            shapes = sorted({str(q.shape) for q in queries})
            raise StageFailure("bad_binding", f"query vectors of shape {', '.join(shapes)}; the index takes "
                                              f"{self._search.matrix.shape[1]} elements")
        indices, scores = self._search.search(np.stack(queries))
        results = []
        for text, row, row_scores in zip(texts, indices, scores, strict=True):
            documents = [{"id": str(self._documents[i].get("id", i)), "text": str(self._documents[i].get("text", "")),
                          "score": round(float(s), 6)} for i, s in zip(row, row_scores, strict=True) if i >= 0]
            results.append({"text": text, "documents": documents, "batch_size": len(payloads)})
        return results

    def _pools(self) -> bool:
        """An embed stage pools when the plan gave it a kernel (a CPU stage) and its node binds `embed`;
        otherwise it passes its inputs on and the node's search embeds the query itself, as without it."""
        return bool(self.stage.get("kernel_symbols")) and bool(self.node_binding.get("embed"))

    async def _embed(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Token vectors from the bound `embed` callable ([seq, dim], or [dim] for one vector), padded to one
        batch and masked, pooled and L2-normalised by the bundle's kernel in one call."""
        import numpy as np

        from hetc.runtime.kernels import EmbedPool

        if self._pool is None:
            self._pool = _bundle_kernel(EmbedPool, self.bundle, symbols=self.stage["kernel_symbols"])
            self._callable = load_callable(self.node_binding["embed"], self.bindings["python_path"])
        merged = [merge_inputs(p["inputs"]) for p in payloads]
        tokens = []
        for value in merged:
            array = np.asarray(await call_bound(self._callable, value["text"]), dtype=np.float32)
            array = array[None] if array.ndim == 1 else array
            if array.ndim != 2 or array.shape[1] != self._pool.dim or array.shape[0] == 0:
                raise StageFailure("bad_binding", f"embed {self.node_binding['embed']} returned an array of shape "
                                                  f"{array.shape}; expected token vectors [tokens, {self._pool.dim}]")
            tokens.append(array)
        seq = max(t.shape[0] for t in tokens)
        hidden = np.zeros((len(tokens), seq, self._pool.dim), np.float32)
        mask = np.zeros((len(tokens), seq), np.int32)
        for row, array in enumerate(tokens):
            hidden[row, : array.shape[0]], mask[row, : array.shape[0]] = array, 1
        pooled = self._pool.pool(hidden, mask)
        return [{**value, "embedding": vector.tolist(), "batch_size": len(payloads)}
                for value, vector in zip(merged, pooled, strict=True)]

    async def _code(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._callable = self._callable or load_callable(self.node_binding["callable"], self.bindings["python_path"])
        merged = merge_inputs(payload["inputs"])
        result = await call_bound(self._callable, merged["text"], payload["inputs"])
        if isinstance(result, dict):
            value = {**merged, **{k: v for k, v in result.items() if k in ("text", "documents")}}
            branch = result.get("branch")
            if branch is not None:
                value["branch"] = [branch] if isinstance(branch, str) else list(branch)
            return value
        return {**merged, "text": _as_text(result)}


def _bundle_kernel(kernel_class, *args: Any, **kwargs: Any):
    """A kernel of the bundle; one it lacks (e.g. retrieval placed on a GPU: no CPU kernel) is a stage failure."""
    try:
        return kernel_class(*args, **kwargs)
    except HetcError as exc:
        raise StageFailure("no_kernel", "; ".join(d.message for d in exc.diagnostics)) from None


class _RetryableToolError(Exception):
    pass
