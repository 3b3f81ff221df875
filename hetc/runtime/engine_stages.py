"""Stages an engine serves that hetc's runtime calls once per request: the plan names the call (the stage's
service `api`, which the op states: hetc/dialects/interfaces.py, `Served.api`), never the stage kind.

- `embeddings`: an embed stage placed where an engine serves its model (a GPU, Gaudi): `POST /embeddings`
  with the texts of a batch in one call; each value goes on with its `embedding`, which the node's search
  ranks the index with (the search then calls no `embed` callable).
- `safety_verdict`: a guardrail (Llama Guard 3): `POST /chat/completions` with the text as the user's turn
  (the engine applies the model's chat template, which holds the policy and its hazard categories); the reply
  is "safe", or "unsafe" and a line of violated categories (S1, S2, ...). Safe: the value goes on along every
  edge leaving the stage (`screened`); unsafe: a `refusal` that stops the request (hetc/runtime/router.py).
  Any other reply fails the request (`llm_failed`): a classifier nobody can read lets nothing through.
- `rerank`: a memory lookup's cross-encoder (`rerank_model`): `POST /rerank` with the query (the text the
  search passed on) and its documents' texts; the documents go on in the engine's order, most relevant first,
  each with its `rerank_score` (all of them: the search already kept the node's `top_k`).

Every failure is an LLMError; the worker turns it into the stage's structured error.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from hetc.dialects.interfaces import EMBEDDINGS_API, RERANK_API, SAFETY_VERDICT_API, SPEECH_API, TRANSCRIPTION_API
from hetc.runtime.audio import speak_values, transcribe_values
from hetc.runtime.llm_client import LLMError, chat_once, embeddings, rerank
from hetc.runtime.text import clean_text

CATEGORY = re.compile(r"\bS\d{1,2}\b")  # Llama Guard 3's hazard category codes (S1 ... S14)
DEFAULT_VERDICT_TOKENS = 8  # "unsafe" and a few categories, when the plan does not give output_tokens


async def embed(model: dict[str, Any], stage: dict[str, Any], values: list[dict[str, Any]], request_ids: list[str],
                timeout_s: float) -> list[dict[str, Any]]:
    """The batch's texts in one call; each value with its vector."""
    vectors = await embeddings(model, [v["text"] for v in values], timeout_s, request_ids[0])
    return [{**value, "embedding": vector} for value, vector in zip(values, vectors, strict=True)]


def read_verdict(reply: str) -> tuple[bool, list[str]]:
    """(safe, violated categories) of a Llama Guard reply; an LLMError for anything else."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    verdict = lines[0].lower() if lines else ""
    if verdict == "safe":
        return True, []
    if verdict == "unsafe":
        return False, sorted(set(CATEGORY.findall(" ".join(lines[1:]))), key=lambda c: int(c[1:]))
    raise LLMError(f"the safety classifier answered neither 'safe' nor 'unsafe': {clean_text(reply, 80)!r}")


async def screen(model: dict[str, Any], stage: dict[str, Any], values: list[dict[str, Any]], request_ids: list[str],
                 timeout_s: float) -> list[dict[str, Any]]:
    """Each text's verdict (one call per request; the engine batches them)."""
    max_tokens = int(stage["service"].get("output_tokens") or DEFAULT_VERDICT_TOKENS)

    async def one(value: dict[str, Any], request_id: str) -> dict[str, Any]:
        reply = await chat_once(model, [{"role": "user", "content": value["text"]}], max_tokens, timeout_s,
                                request_id)
        safe, categories = read_verdict(reply)
        if safe:
            return {**value, "screened": True}
        return {"refusal": {"stage": stage["id"], "node": stage["node"], "verdict": "unsafe",
                            "categories": categories}}

    return list(await asyncio.gather(*(one(v, r) for v, r in zip(values, request_ids, strict=True))))


async def reorder(model: dict[str, Any], stage: dict[str, Any], values: list[dict[str, Any]], request_ids: list[str],
                  timeout_s: float) -> list[dict[str, Any]]:
    """Each request's documents in the cross-encoder's order (one call per request: each has its own query)."""

    async def one(value: dict[str, Any], request_id: str) -> dict[str, Any]:
        documents = value.get("documents") or []
        if not documents:
            return value  # nothing to rescore
        ranked = await rerank(model, value["text"], [str(d.get("text", "")) for d in documents], timeout_s,
                              request_id)
        return {**value, "documents": [{**documents[i], "rerank_score": round(score, 6)} for i, score in ranked]}

    return list(await asyncio.gather(*(one(v, r) for v, r in zip(values, request_ids, strict=True))))


ENGINE_CALLS = {EMBEDDINGS_API: embed, SAFETY_VERDICT_API: screen, RERANK_API: reorder,
                TRANSCRIPTION_API: transcribe_values, SPEECH_API: speak_values}  # the last two: audio.py
