"""Speech-to-text and text-to-speech stages through the OpenAI-compatible audio API that vLLM (Whisper
transcription), SGLang and others serve: `POST /audio/transcriptions` (multipart: the audio file and the model
name; answer `{"text": ...}`) and `POST /audio/speech` (JSON `{"model", "input", "voice"}`; answer the audio
bytes). Audio travels through the graph base64-encoded under `audio_base64`; a request gives it as the input
node's text (plain base64 or a `data:audio/...;base64,` URL).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from hetc.runtime.llm_client import LLMError

DEFAULT_VOICE = "alloy"  # the OpenAI API's first documented voice; servers map or ignore it
SPEECH_FORMAT = "wav"
# What the documented speech server of a model preset calls the model and a voice it has (docs/deploy.md):
# Kokoro-FastAPI accepts only its OpenAI names for the model (api/src/core/openai_mappings.json: "kokoro",
# "tts-1", ...) and voices of its voice pack ("af_heart", its default_voice in api/src/core/config.py).
SPEECH_SERVER_NAMES = {"kokoro-82m": ("kokoro", "af_heart")}


class AudioError(LLMError):
    """A speech server's failure; `kind` is the stage error type the worker reports."""

    kind = "speech_failed"


class BadAudio(AudioError):
    kind = "bad_input"  # the request's audio, not the server, is at fault


def decode_audio(text: str) -> bytes:
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadAudio("speech-to-text input is not base64 audio") from None


def _url(model: dict[str, Any], path: str) -> str:
    return model["endpoint"].rstrip("/") + path


async def transcribe(model: dict[str, Any], audio: bytes, timeout_s: float, headers: dict[str, str]) -> str:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("file", audio, filename="audio.wav", content_type="audio/wav")
    form.add_field("model", model["model"])
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(timeout_s, 0.001))) as session, \
                session.post(_url(model, "/audio/transcriptions"), data=form, headers=headers) as response:
            if response.status != 200:
                raise AudioError(f"HTTP {response.status} from the transcription server")
            return str((await response.json(content_type=None)).get("text", ""))
    except TimeoutError:
        raise AudioError(f"no transcription within {timeout_s * 1000:.0f} ms") from None
    except (aiohttp.ClientError, ValueError) as exc:
        raise AudioError(f"transcription failed: {type(exc).__name__}") from None


def served_model_name(preset: str) -> str | None:
    """The model name the documented speech server of `preset` answers to, or None (the repo id then)."""
    return SPEECH_SERVER_NAMES[preset][0] if preset in SPEECH_SERVER_NAMES else None


async def speak(model: dict[str, Any], text: str, timeout_s: float, headers: dict[str, str],
                voice: str = DEFAULT_VOICE) -> bytes:
    import aiohttp

    body = {"model": model["model"], "input": text, "voice": voice, "response_format": SPEECH_FORMAT}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(timeout_s, 0.001))) as session, \
                session.post(_url(model, "/audio/speech"), json=body, headers=headers) as response:
            if response.status != 200:
                raise AudioError(f"HTTP {response.status} from the speech server")
            return await response.read()
    except TimeoutError:
        raise AudioError(f"no speech within {timeout_s * 1000:.0f} ms") from None
    except aiohttp.ClientError as exc:
        raise AudioError(f"speech failed: {type(exc).__name__}") from None


# ------------------------------------------------------------------ engine calls (the plan's service `api`)
# Each fails with an AudioError (an LLMError), whose `kind` the worker reports: bad_input, speech_failed.


async def transcribe_values(model: dict[str, Any], stage: dict[str, Any], values: list[dict[str, Any]],
                            request_ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """TRANSCRIPTION_API: each request's audio (its `audio_base64`, else its text as base64) as text."""
    import asyncio

    async def one(value: dict[str, Any], request_id: str) -> dict[str, Any]:
        audio = decode_audio(value.get("audio_base64") or value["text"])
        return {"text": await transcribe(model, audio, timeout_s, {"X-Request-Id": request_id})}

    return list(await asyncio.gather(*(one(v, r) for v, r in zip(values, request_ids, strict=True))))


async def speak_values(model: dict[str, Any], stage: dict[str, Any], values: list[dict[str, Any]],
                       request_ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """SPEECH_API: each request's text, spoken (base64 under `audio_base64`), in a voice its server has."""
    import asyncio

    voice = SPEECH_SERVER_NAMES.get((stage.get("model") or {}).get("name", ""), ("", DEFAULT_VOICE))[1]

    async def one(value: dict[str, Any], request_id: str) -> dict[str, Any]:
        spoken = await speak(model, value["text"], timeout_s, {"X-Request-Id": request_id}, voice)
        return {"text": value["text"], "audio_base64": base64.b64encode(spoken).decode()}

    return list(await asyncio.gather(*(one(v, r) for v, r in zip(values, request_ids, strict=True))))
