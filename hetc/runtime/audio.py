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

DEFAULT_VOICE = "alloy"  # the OpenAI API's first documented voice; servers map or ignore it
SPEECH_FORMAT = "wav"


class AudioError(Exception):
    pass


def decode_audio(text: str) -> bytes:
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AudioError("speech-to-text input is not base64 audio") from None


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


async def speak(model: dict[str, Any], text: str, timeout_s: float, headers: dict[str, str]) -> bytes:
    import aiohttp

    body = {"model": model["model"], "input": text, "voice": DEFAULT_VOICE, "response_format": SPEECH_FORMAT}
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
