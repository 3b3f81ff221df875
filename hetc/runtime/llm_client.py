"""A minimal client of the OpenAI-compatible API (vLLM, SGLang, TensorRT-LLM, ... serve it).

`chat_stream` streams a chat completion (server-sent events, `stream: true`) so tokens reach the user as they
are decoded, and assembles tool calls from their streamed fragments (each delta names the call's index; `id`
and the function name come first, the JSON arguments arrive in pieces). `chat_once` asks for a whole short
answer (a classifier's verdict); `embeddings` returns one vector per text (`POST /embeddings`); `rerank` the
documents' order by a cross-encoder's relevance to a query (`POST /rerank`).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from hetc.runtime.text import clean_text


class LLMError(Exception):
    pass


def _headers(model: dict[str, Any], request_id: str) -> dict[str, str]:
    headers = {"X-Request-Id": request_id}
    if model.get("api_key_env") and os.environ.get(model["api_key_env"]):
        headers["Authorization"] = f"Bearer {os.environ[model['api_key_env']]}"
    return headers


def _url(model: dict[str, Any], route: str) -> str:
    return model["endpoint"].rstrip("/") + route


async def _post_json(model: dict[str, Any], route: str, body: dict[str, Any], timeout_s: float,
                     request_id: str) -> dict[str, Any]:
    """One JSON request and its JSON answer; every failure is an LLMError saying what went wrong."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(timeout_s, 0.001))) as session, \
                session.post(_url(model, route), json=body, headers=_headers(model, request_id)) as response:
            text = await response.text()
            if response.status != 200:
                raise LLMError(f"HTTP {response.status} from the model server: {clean_text(text, 200)}")
    except TimeoutError:
        raise LLMError(f"the model server did not answer within {timeout_s * 1000:.0f} ms") from None
    except aiohttp.ClientError as exc:
        raise LLMError(f"cannot reach the model server: {type(exc).__name__}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        raise LLMError("the model server's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise LLMError("the model server's answer is not a JSON object")
    return answer


async def chat_once(model: dict[str, Any], messages: list[dict[str, Any]], max_tokens: int, timeout_s: float,
                    request_id: str) -> str:
    """The text of one whole chat completion (greedy: temperature 0)."""
    body = {"model": model["model"], "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    answer = await _post_json(model, "/chat/completions", body, timeout_s, request_id)
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMError("the model server's answer has no choices[0].message") from None
    return content if isinstance(content, str) else ""


async def embeddings(model: dict[str, Any], texts: list[str], timeout_s: float, request_id: str) -> list[list[float]]:
    """One vector per text, in the order given (`data[i].index`), from `POST /embeddings`."""
    body = {"model": model["model"], "input": texts, "encoding_format": "float"}
    answer = await _post_json(model, "/embeddings", body, timeout_s, request_id)
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != len(texts):
        raise LLMError(f"the model server returned {len(data) if isinstance(data, list) else 'no'} embeddings "
                       f"for {len(texts)} texts")
    vectors: list[list[float] | None] = [None] * len(texts)
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(texts) or not isinstance(vector, list) or not vector \
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector):
            raise LLMError("the model server's embeddings are not a list of {index, embedding: [numbers]}")
        vectors[index] = [float(x) for x in vector]
    if any(v is None for v in vectors):
        raise LLMError("the model server's embeddings repeat an index")
    return vectors


async def rerank(model: dict[str, Any], query: str, documents: list[str], timeout_s: float,
                 request_id: str) -> list[tuple[int, float]]:
    """(index into `documents`, relevance score) of every document, most relevant first, from `POST /rerank`
    (vLLM's re-rank API: `results` sorted by `relevance_score`, each naming its document's `index`)."""
    body = {"model": model["model"], "query": query, "documents": documents, "top_n": len(documents)}
    answer = await _post_json(model, "/rerank", body, timeout_s, request_id)
    results = answer.get("results")
    ranked = []
    for item in results if isinstance(results, list) else []:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(documents) or isinstance(score, bool) \
                or not isinstance(score, (int, float)):
            raise LLMError("the model server's rerank results are not a list of {index, relevance_score}")
        ranked.append((index, float(score)))
    if sorted(i for i, _ in ranked) != list(range(len(documents))):
        raise LLMError(f"the model server ranked {len(ranked)} of {len(documents)} documents, each once expected")
    return sorted(ranked, key=lambda pair: -pair[1])  # stable: the server's order among equal scores


async def chat_stream(model: dict[str, Any], messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                      timeout_s: float, request_id: str) -> AsyncIterator[dict[str, Any]]:
    """Events {"token": text}..., then {"tool_calls": [...]} (OpenAI format, arguments as JSON text)."""
    import aiohttp

    body: dict[str, Any] = {"model": model["model"], "messages": messages, "stream": True}
    if tools:
        body["tools"] = tools
    headers = _headers(model, request_id)
    url = _url(model, "/chat/completions")
    calls: dict[int, dict[str, Any]] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(timeout_s, 0.001))) as session, \
                session.post(url, json=body, headers=headers) as response:
            if response.status != 200:
                raise LLMError(f"HTTP {response.status} from the model server: {clean_text(await response.text(), 200)}")
            async for raw in response.content:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise LLMError("the model server sent an event that is not JSON") from None
                for choice in chunk.get("choices", []):
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield {"token": delta["content"]}
                    for fragment in delta.get("tool_calls") or []:
                        call = calls.setdefault(int(fragment.get("index", 0)),
                                                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                        call["id"] = fragment.get("id") or call["id"]
                        function = fragment.get("function") or {}
                        call["function"]["name"] += function.get("name") or ""
                        call["function"]["arguments"] += function.get("arguments") or ""
    except TimeoutError:
        raise LLMError(f"the model server did not finish within {timeout_s * 1000:.0f} ms") from None
    except aiohttp.ClientError as exc:
        raise LLMError(f"cannot reach the model server: {type(exc).__name__}") from None
    yield {"tool_calls": [calls[i] for i in sorted(calls)]}
