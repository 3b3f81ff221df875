"""The cost model: latency, throughput and memory of granular operators on a device class.

Roofline per operator (reference/paper-method.md §2, reference/llm-perf-model.md):

    time = max(FLOPs / (peak * eff_compute), bytes / (peak_bw * eff_bw)) + communication + fixed overhead

LLM prefill and decode are modelled from the architecture (dense or MoE); tensor parallelism (tp) divides
compute, weights and KV cache and adds two ring all-reduces per layer over the scale-up link; pipeline
parallelism (pp) splits the layers and adds stage hand-offs. Pure Python: called thousands of times by
placement, so no I/O and no heavy imports here; docs/cost-model.md has the derivations.

This module is the public API; the model lives by job in hetc.model.rates (device rates, memory,
communication and engine overheads), hetc.model.llm (LLM phases and KV moves) and hetc.model.ops (other ops).
"""

from __future__ import annotations

from hetc.model.engines import EngineProfile, engine_profile
from hetc.model.llm import (
    DecodeEstimate,
    PhaseEstimate,
    ServeEstimate,
    decode,
    decode_step_bytes,
    decode_step_flops,
    kv_bytes,
    kv_egress_gbps,
    kv_ingress_gbps,
    kv_transfer_s,
    max_batch,
    memory_per_device,
    min_tp,
    prefill,
    prefill_flops,
    serve,
)
from hetc.model.ops import (
    AUDIO_WINDOW_S,
    OP_OVERHEAD_S,
    RANDOM_ACCESS_S,
    TTS_FRAMES_PER_S,
    WHISPER_WINDOW_FRAMES,
    OpEstimate,
    cpu_compute,
    encoder_model,
    speech_to_text,
    tool_latency_s,
    tts,
    vector_search,
)
from hetc.model.rates import (
    ACTIVATION_BYTES,
    GIB,
    MAX_EFFICIENCY,
    RUNTIME_RESERVED_BYTES,
    TUNING,
    Tuning,
    compute_rate,
    distinct_experts,
    gemm_shape_factor,
    memory_rate,
    paged_tokens,
    precision_bytes,
    usable_memory_bytes,
    valid_tp,
    weight_bytes_read,
)

__all__ = [
    "ACTIVATION_BYTES",
    "AUDIO_WINDOW_S",
    "DecodeEstimate",
    "EngineProfile",
    "GIB",
    "MAX_EFFICIENCY",
    "OP_OVERHEAD_S",
    "OpEstimate",
    "PhaseEstimate",
    "RANDOM_ACCESS_S",
    "RUNTIME_RESERVED_BYTES",
    "ServeEstimate",
    "TTS_FRAMES_PER_S",
    "TUNING",
    "Tuning",
    "WHISPER_WINDOW_FRAMES",
    "compute_rate",
    "cpu_compute",
    "decode",
    "decode_step_bytes",
    "decode_step_flops",
    "distinct_experts",
    "encoder_model",
    "engine_profile",
    "gemm_shape_factor",
    "kv_bytes",
    "kv_egress_gbps",
    "kv_ingress_gbps",
    "kv_transfer_s",
    "max_batch",
    "memory_per_device",
    "memory_rate",
    "min_tp",
    "paged_tokens",
    "precision_bytes",
    "prefill",
    "prefill_flops",
    "serve",
    "speech_to_text",
    "tool_latency_s",
    "tts",
    "usable_memory_bytes",
    "valid_tp",
    "vector_search",
    "weight_bytes_read",
]
