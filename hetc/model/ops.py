"""Non-LLM operators on a device: embedding and speech encoders, text to speech, vector search, declared CPU
work and tool calls (hetc.model.costmodel is the public API).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hetc.errors import HetcError
from hetc.hwdb.schema import Device
from hetc.model.models import ModelArch
from hetc.model.rates import (
    ACTIVATION_BYTES,
    _activation_bytes,
    _bound,
    compute_rate,
    memory_rate,
    precision_bytes,
    usable_memory_bytes,
)

# Whisper-style encoders see a fixed 30 s window of audio as 1,500 frames (arch.encoder_frames; Whisper
# paper, https://arxiv.org/abs/2212.04356 §2.2).
AUDIO_WINDOW_S = 30.0
WHISPER_WINDOW_FRAMES = 1500  # encoder positions per window when the arch leaves encoder_frames at 0
# Text-to-speech decoders run at the acoustic frame rate: 24 kHz audio with a hop of 300 samples = 80
# frames/s (StyleTTS2 / Kokoro configuration, https://huggingface.co/hexgrad/Kokoro-82M/blob/main/config.json;
# estimate: the vocoder's upsampling layers make this a lower bound on work per second of audio).
TTS_FRAMES_PER_S = 80.0
# One dependent random access to DRAM (graph-index traversal such as HNSW): about 100 ns on current
# server CPUs and GPUs (estimate; typical load-to-use latency of DDR5/HBM without cache hits).
RANDOM_ACCESS_S = 100e-9
# Fixed time of one non-LLM forward pass (embedding, speech, TTS, vector scan): kernel launches and host
# sync, "tens to hundreds of microseconds" (reference/llm-perf-model.md); 200 us, the middle of that range.
OP_OVERHEAD_S = 200e-6
# HNSW visits about ef * log2(N) nodes per query (reference/llm-perf-model.md; Malkov & Yashunin,


@dataclass(frozen=True)
class OpEstimate:
    """A non-LLM operator (embedding, speech, TTS, vector search)."""

    latency_s: float
    flops: float
    bytes: float
    bound: str
    memory_bytes: float
    fits: bool



def _dense_pass(device: Device, precision: str, flops: float, traffic: float, held: float) -> OpEstimate:
    rate, _ = compute_rate(device, precision)
    compute_s, memory_s = flops / rate, traffic / memory_rate(device)
    return OpEstimate(latency_s=max(compute_s, memory_s) + OP_OVERHEAD_S, flops=flops, bytes=traffic,
                      bound=_bound(compute_s, memory_s, 0.0, OP_OVERHEAD_S), memory_bytes=held,
                      fits=held <= usable_memory_bytes(device))


def _encoder_params(arch: ModelArch) -> int:
    return arch.encoder_layers * (4 * arch.d_model ** 2 + arch._mlp_params())


def encoder_model(arch: ModelArch, device: Device, precision: str, tokens: int, batch: int = 1,
                  output_tokens: int = 0) -> OpEstimate:
    """An embedding model (kind encoder: one bidirectional pass over `tokens`) or a speech-to-text model
    (kind encoder_decoder: an encoder pass over `tokens` audio frames, then `output_tokens` decode steps
    of the text decoder, each reading the decoder weights and attending to the encoder output)."""
    if batch < 1 or tokens < 1:
        raise HetcError(f"batch and tokens must be >= 1 (got {batch}, {tokens})")
    b_w = precision_bytes(precision)
    d, h, d_h = arch.d_model, arch.n_heads, arch.head_dim
    if arch.kind == "encoder_decoder":
        enc_params = _encoder_params(arch)
        dec_params = arch.params() - enc_params
        enc_flops = batch * (2 * enc_params * tokens + 4 * arch.encoder_layers * h * d_h * tokens ** 2)
        est = _dense_pass(device, precision, enc_flops, enc_params * b_w + batch * tokens * d * ACTIVATION_BYTES,
                          arch.params() * b_w + _activation_bytes(arch, batch * tokens, 1))
        if output_tokens <= 0:
            return est
        # each decoder step: weights + cross-attention over the encoder output + self-attention
        context = output_tokens / 2
        step_flops = batch * (2 * dec_params + 4 * arch.n_layers * h * d_h * (tokens + context))
        step_bytes = dec_params * b_w + batch * arch.n_layers * 2 * d * (tokens + context) * ACTIVATION_BYTES
        step = _dense_pass(device, precision, step_flops, step_bytes, est.memory_bytes)
        return OpEstimate(latency_s=est.latency_s + output_tokens * step.latency_s,
                          flops=est.flops + output_tokens * step.flops, bytes=est.bytes + output_tokens * step.bytes,
                          bound=step.bound if output_tokens * step.latency_s > est.latency_s else est.bound,
                          memory_bytes=est.memory_bytes, fits=est.fits)
    flops = batch * (2 * arch.params() * tokens + 4 * arch.n_layers * h * d_h * tokens ** 2)
    traffic = arch.params() * b_w + batch * tokens * d * ACTIVATION_BYTES
    return _dense_pass(device, precision, flops, traffic,
                       arch.params() * b_w + _activation_bytes(arch, batch * tokens, 1))


def speech_to_text(arch: ModelArch, device: Device, precision: str, audio_seconds: float, output_tokens: int,
                   batch: int = 1) -> OpEstimate:
    """Whisper-style: the encoder runs once per 30 s window of 1,500 frames; then the transcript decode."""
    windows = max(1, math.ceil(audio_seconds / AUDIO_WINDOW_S))
    frames = windows * (arch.encoder_frames or WHISPER_WINDOW_FRAMES)
    return encoder_model(arch, device, precision, frames, batch, output_tokens)


def tts(arch: ModelArch, device: Device, precision: str, audio_seconds: float, batch: int = 1) -> OpEstimate:
    """Non-autoregressive text-to-speech: about 2 * params FLOPs per acoustic frame of output audio."""
    if audio_seconds <= 0 or batch < 1:
        raise HetcError(f"audio_seconds must be > 0 and batch >= 1 (got {audio_seconds}, {batch})")
    frames = audio_seconds * TTS_FRAMES_PER_S
    b_w = precision_bytes(precision)
    flops = batch * 2 * arch.params() * frames
    traffic = arch.params() * b_w + batch * frames * arch.d_model * ACTIVATION_BYTES
    return _dense_pass(device, precision, flops, traffic, arch.params() * b_w + traffic)


def vector_search(n_vectors: int, dim: int, bytes_per_element: float, device: Device, index: str = "flat",
                  ef: int = 64, batch: int = 1) -> OpEstimate:
    """Nearest-neighbour search for `batch` queries. flat: one bandwidth-bound scan of all vectors shared
    by the batch (2 * dim FLOPs per vector per query). hnsw: about ef * log2(N) dependent distance
    computations per query, each a random access plus dim multiply-adds (latency-bound)."""
    if n_vectors < 1 or dim < 1 or batch < 1 or bytes_per_element <= 0:
        raise HetcError("vector_search needs n_vectors, dim, batch >= 1 and bytes_per_element > 0")
    index_bytes = n_vectors * dim * bytes_per_element
    precision = "fp32" if device.peak_tflops.get("fp32") else "bf16"
    if index == "flat":
        return _dense_pass(device, precision, 2.0 * n_vectors * dim * batch, index_bytes, index_bytes)
    if index == "hnsw":
        visits = ef * max(1.0, math.log2(n_vectors))
        per_visit_s = RANDOM_ACCESS_S + dim * bytes_per_element / memory_rate(device)
        latency = batch * visits * per_visit_s  # one query after another; callers parallelise replicas
        return OpEstimate(latency_s=latency, flops=2.0 * dim * visits * batch,
                          bytes=visits * dim * bytes_per_element * batch, bound="latency",
                          memory_bytes=index_bytes * 1.5,  # graph links add about half again (M=16-32)
                          fits=index_bytes * 1.5 <= usable_memory_bytes(device))
    raise HetcError(f"unknown vector index {index!r}; expected flat or hnsw")


def cpu_compute(work_ms: float) -> float:
    """General-purpose CPU work declared by the user, in seconds (one core of the reference CPU)."""
    if work_ms < 0:
        raise HetcError(f"work_ms must be >= 0, got {work_ms}")
    return work_ms / 1000.0


def tool_latency_s(latency_ms: float, request_kb: float = 0.0, response_kb: float = 0.0,
                   device: Device | None = None) -> float:
    """A tool call: its declared latency plus moving request and response over the host's NIC."""
    if latency_ms < 0 or request_kb < 0 or response_kb < 0:
        raise HetcError("tool latency and payload sizes must be >= 0")
    wire_s = 0.0
    if device is not None:
        wire_s = (request_kb + response_kb) * 1e3 / (device.scaleout_gbs * 1e9) + device.scaleout_latency_us * 1e-6
    return latency_ms / 1000.0 + wire_s
