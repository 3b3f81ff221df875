"""Text-to-speech servers for the Kubernetes export: the documented OpenAI-compatible `POST /v1/audio/speech`
server of each TTS model preset hetc ships, per vendor (docs/deploy.md cites the images and the port).

- kokoro-82m: Kokoro-FastAPI (github.com/remsky/Kokoro-FastAPI), a FastAPI server of Kokoro-82M that mounts
  the OpenAI speech route under /v1. Its images bake the model in and start uvicorn on port 8880
  (docker/scripts/entrypoint.sh); it publishes a CUDA image and a CPU image.

`--image speech=IMAGE` replaces the image of every TTS stage (a mirror, or your own server on port 8880). A TTS
stage whose model or device class has no documented server here, and no such image, cannot be exported: the
export stops with an error that names the stage, never a Deployment that cannot answer.
"""

from __future__ import annotations

import json
from typing import Any

from hetc.dialects.interfaces import SPEECH_API
from hetc.errors import HetcError, Loc

SPEECH_PORT = 8880  # Kokoro-FastAPI's port; an image given with `--image speech=IMAGE` must listen on it too
SPEECH_KEY = "speech"  # `--image speech=IMAGE`: every TTS stage's server (a mirror, or your own server)
# preset -> (container port, image per vendor key of hetc.bundle.vllm.vendor_key)
SPEECH_SERVERS: dict[str, tuple[int, dict[str, str]]] = {
    "kokoro-82m": (SPEECH_PORT, {"nvidia": "ghcr.io/remsky/kokoro-fastapi-gpu:latest",
                                 "cpu": "ghcr.io/remsky/kokoro-fastapi-cpu:latest"}),
}


def serves_speech(stage: dict[str, Any]) -> bool:
    """A speech server runs the stage: its plan entry names the speech API the runtime calls."""
    return stage["model"] is not None and stage["service"].get("api") == SPEECH_API


class NoSpeechServer(HetcError):
    """A TTS stage on a device class for which hetc knows no speech server image (and none was given)."""


def speech_server(stage: dict[str, Any], vendor: str, image: str | None = None) -> tuple[str, int]:
    """(image, container port) of the stage's speech server: `image` (--image speech=IMAGE) if given, else the
    documented one; a HetcError (exit 2) when there is none."""
    port, images = SPEECH_SERVERS.get(stage["model"]["name"], (SPEECH_PORT, {}))
    if image:
        return image, port
    if vendor not in images:
        where = f"on {vendor}" if images else "at all"
        raise NoSpeechServer(f"cannot export text-to-speech stage {json.dumps(stage['id'], ensure_ascii=True)}: hetc knows "
                        f"no OpenAI-compatible /v1/audio/speech server for model "
                        f"{json.dumps(stage['model']['name'], ensure_ascii=True)} {where} (docs/deploy.md lists "
                        "them); compile it onto a device class that has one, give the image of your own server "
                        f"(listening on port {SPEECH_PORT}) with --image {SPEECH_KEY}=IMAGE, or give its URL in the "
                        "bindings with the Ray Serve or local runtime", Loc("plan.json"))
    return images[vendor], port
