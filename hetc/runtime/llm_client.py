"""A minimal client of the OpenAI-compatible chat completions API (vLLM, SGLang, TensorRT-LLM, ... serve it).

Streams the answer (server-sent events, `stream: true`) so tokens reach the user as they are decoded, and
assembles tool calls from their streamed fragments (each delta names the call's index; `id` and the function
name come first, the JSON arguments arrive in pieces).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from hetc.runtime.text import clean_text


class LLMError(Exception):
    pass


async def chat_stream(model: dict[str, Any], messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                      timeout_s: float, request_id: str) -> AsyncIterator[dict[str, Any]]:
    """Events {"token": text}..., then {"tool_calls": [...]} (OpenAI format, arguments as JSON text)."""
    import aiohttp

    body: dict[str, Any] = {"model": model["model"], "messages": messages, "stream": True}
    if tools:
        body["tools"] = tools
    headers = {"X-Request-Id": request_id}
    if model.get("api_key_env") and os.environ.get(model["api_key_env"]):
        headers["Authorization"] = f"Bearer {os.environ[model['api_key_env']]}"
    url = model["endpoint"].rstrip("/") + "/chat/completions"
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
