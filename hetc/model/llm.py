"""LLM prefill and decode on one replica of tp x pp devices, from the architecture (dense or MoE), and the
KV cache a request moves between them (hetc.model.costmodel is the public API).

Tensor parallelism (tp) divides compute, weights and KV cache and adds two ring all-reduces per layer over the
scale-up link; pipeline parallelism (pp) splits the layers and adds stage hand-offs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hetc.errors import HetcError
from hetc.hwdb.schema import Device
from hetc.model.engines import EngineProfile, engine_profile
from hetc.model.models import ModelArch
from hetc.model.rates import (
    ACTIVATION_BYTES,
    TUNING,
    Tuning,
    _activation_bytes,
    _allreduce_s,
    _bound,
    _check_parallelism,
    _handoff_s,
    _kv_split,
    _seq_overhead_s,
    _step_overhead_s,
    compute_rate,
    gemm_shape_factor,
    memory_rate,
    paged_tokens,
    precision_bytes,
    usable_memory_bytes,
    valid_tp,
    weight_bytes_read,
)


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PhaseEstimate:
    """One forward pass over a batch (prefill, an encoder pass, ...), on one replica of tp*pp devices."""

    latency_s: float  # for the whole batch (TTFT without queueing for prefill)
    flops: float  # whole replica
    bytes: float  # memory traffic, whole replica
    compute_s: float
    memory_s: float
    comm_s: float  # all-reduces + pipeline hand-offs
    bound: str  # compute | memory | network | overhead
    memory_bytes: float  # held per device
    capacity_bytes: float  # usable per device (after the engine reserve)
    fits: bool
    devices: int  # tp * pp
    compute_precision: str  # precision whose peak was used (after fallback)


@dataclass(frozen=True)
class DecodeEstimate:
    """Decode at a steady batch: one step emits one token for each of `batch` sequences."""

    tbt_s: float  # step time at this batch = time between tokens
    step_s_base: float  # step time ~= step_s_base + step_s_per_seq * batch (tangent at this batch,
    step_s_per_seq: float  # exact here, a lower bound elsewhere: the roofline max is convex in batch)
    tokens_per_s: float  # per replica
    tokens_per_s_per_device: float
    requests_per_s: float  # per replica (output_tokens per request)
    flops_per_step: float
    bytes_per_step: float
    compute_s: float
    memory_s: float
    comm_s: float
    bound: str
    memory_bytes: float  # held per device
    capacity_bytes: float
    fits: bool
    devices: int
    batch: int
    context_tokens: float  # average context per sequence over the generation
    compute_precision: str


@dataclass(frozen=True)
class ServeEstimate:
    """A replica serving requests end to end (prefill and decode on the same devices)."""

    ttft_s: float  # prefill of one request, no queueing
    tbt_s: float
    tokens_per_s: float  # output tokens per replica, prefill time included
    tokens_per_s_per_device: float
    requests_per_s: float
    prefill: PhaseEstimate  # prefill of the whole batch
    decode: DecodeEstimate
    fits: bool
    devices: int




def prefill_flops(arch: ModelArch, batch: int, input_tokens: int) -> float:
    """2 * P_active * tokens + causal attention (2 * L * h * d_h * T^2 per sequence, windows capped)."""
    return 2 * arch.active_params() * batch * input_tokens + batch * arch.prefill_attention_flops(input_tokens)


def decode_step_flops(arch: ModelArch, batch: int, context_tokens: float) -> float:
    """2 * P_active per token + attention over the context: 4 * L * h * d_h * C (windows capped)."""
    return batch * (2 * arch.active_params() + arch.decode_attention_flops(context_tokens))


def decode_step_bytes(arch: ModelArch, precision: str, kv_precision: str, batch: int,
                      context_tokens: float) -> float:
    """Weights once per step (experts touched, for MoE) + every sequence's KV cache."""
    kv = arch.kv_cache_bytes(context_tokens, precision_bytes(kv_precision))
    return weight_bytes_read(arch, precision_bytes(precision), batch) + batch * kv


def memory_per_device(arch: ModelArch, precision: str, kv_precision: str, tp: int, pp: int, batch: int,
                      context_tokens: float, tokens_in_flight: float,
                      engine: str | EngineProfile | None = None) -> float:
    """Weights/(tp*pp) + paged KV of the batch at `context_tokens` + activations of the tokens in flight."""
    eng = engine_profile(engine)
    weights = arch.params() * precision_bytes(precision) / (tp * pp)
    kv = arch.kv_cache_bytes(paged_tokens(context_tokens, eng.kv_block_tokens), precision_bytes(kv_precision))
    kv_cache = batch * kv / (_kv_split(arch, tp) * pp)
    return weights + kv_cache + _activation_bytes(arch, tokens_in_flight, tp)


def _capacity(arch: ModelArch, device: Device, precision: str, tp: int, pp: int, engine: EngineProfile) -> float:
    return usable_memory_bytes(device, engine, arch.params() * precision_bytes(precision) / (tp * pp))


def prefill(arch: ModelArch, device: Device, precision: str, tp: int, pp: int, batch: int,
            input_tokens: int, kv_precision: str | None = None, engine: str | EngineProfile | None = None,
            tuning: Tuning | None = None) -> PhaseEstimate:
    """Prefill of `batch` prompts of `input_tokens` tokens on one replica (tp x pp devices).

    Two operators per layer: the GEMMs (2 * P_active FLOPs per token at the rate of a GEMM with that many
    rows, or the weight read, whichever is longer) and attention (its own FLOPs at a lower rate). With
    chunked prefill the tokens go through in chunks, each re-reading the weights and paying the step
    overhead."""
    _check_parallelism(device, tp, pp, batch)
    tuning, eng = tuning or TUNING, engine_profile(engine or arch.engine, device)
    kv_precision = kv_precision or precision
    rate, used = compute_rate(device, precision, tuning)
    attention_rate = compute_rate(device, kv_precision, tuning)[0] * tuning.attention_compute
    tokens = batch * input_tokens
    chunks = max(1, math.ceil(tokens / eng.prefill_chunk_tokens)) if eng.prefill_chunk_tokens else 1
    rows = tokens / chunks
    gemm_flops = 2 * arch.active_params() * tokens
    attention_flops = batch * arch.prefill_attention_flops(input_tokens)
    kv_written = tokens * arch.kv_cache_bytes(1, precision_bytes(kv_precision))
    weights = weight_bytes_read(arch, precision_bytes(precision), rows)
    bw = memory_rate(device, tuning)
    gemm_compute_s = gemm_flops / (tp * rate * gemm_shape_factor(rows, tuning))
    attention_s = attention_flops / (tp * attention_rate)
    weights_s = chunks * weights / (tp * bw)
    memory_s = weights_s + kv_written / (tp * bw)
    # the layers run one stage after another, so pp adds capacity, not speed, for one batch
    message = tokens * arch.d_model * ACTIVATION_BYTES
    comm_s = (2 * arch.n_layers * (chunks - 1) * _allreduce_s(device, tp, 0.0, tuning)
              + 2 * arch.n_layers * _allreduce_s(device, tp, message, tuning) + _handoff_s(device, tp, pp, message))
    overhead_s = chunks * _step_overhead_s(eng, tuning) + _seq_overhead_s(eng, tuning, batch)
    latency = max(gemm_compute_s, weights_s) + attention_s + comm_s + overhead_s
    held = memory_per_device(arch, precision, kv_precision, tp, pp, batch, input_tokens, rows, eng)
    capacity = _capacity(arch, device, precision, tp, pp, eng)
    compute_s = gemm_compute_s + attention_s
    return PhaseEstimate(
        latency_s=latency, flops=gemm_flops + attention_flops, bytes=chunks * weights + kv_written,
        compute_s=compute_s, memory_s=memory_s, comm_s=comm_s, bound=_bound(compute_s, memory_s, comm_s, overhead_s),
        memory_bytes=held, capacity_bytes=capacity, fits=held <= capacity, devices=tp * pp, compute_precision=used)


@dataclass(frozen=True)
class _Step:
    time_s: float
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    flops: float
    bytes: float


def _decode_step(arch: ModelArch, device: Device, precision: str, kv_precision: str, tp: int, pp: int,
                 batch: float, context: float, eng: EngineProfile, tuning: Tuning) -> _Step:
    """One decode step for `batch` sequences at `context` tokens: GEMMs (compute at the small-M rate, or the
    weight read) then attention (its FLOPs, or the KV read at the attention kernels' lower bandwidth), two
    all-reduces per layer, hand-offs and the engine's per-step overhead."""
    rate, _ = compute_rate(device, precision, tuning)
    attention_rate = compute_rate(device, kv_precision, tuning)[0] * tuning.attention_compute
    bw = memory_rate(device, tuning)
    gemm_flops = 2 * arch.active_params() * batch
    attention_flops = batch * arch.decode_attention_flops(context)
    weights = weight_bytes_read(arch, precision_bytes(precision), batch)
    kv = batch * arch.kv_cache_bytes(context, precision_bytes(kv_precision))
    gemm_compute_s = gemm_flops / (tp * rate * gemm_shape_factor(batch, tuning))
    weights_s = weights / (tp * bw)
    attention_compute_s = attention_flops / (tp * attention_rate)
    kv_s = kv / (_kv_split(arch, tp) * bw * tuning.attention_bw)
    message = batch * arch.d_model * ACTIVATION_BYTES
    comm_s = 2 * arch.n_layers * _allreduce_s(device, tp, message, tuning) + _handoff_s(device, tp, pp, message)
    overhead_s = _step_overhead_s(eng, tuning) + _seq_overhead_s(eng, tuning, batch)
    time_s = max(gemm_compute_s, weights_s) + max(attention_compute_s, kv_s) + comm_s + overhead_s
    return _Step(time_s, gemm_compute_s + attention_compute_s, weights_s + kv_s, comm_s, overhead_s,
                 gemm_flops + attention_flops, weights + kv)


def _held_context(eng: EngineProfile, input_tokens: int, output_tokens: int) -> float:
    """Context each sequence holds in KV for the memory check: the full input + output under static
    batching (every sequence reaches it together); under continuous batching sequences are spread over
    their generation, so on average input + output / 2 (engines admit and preempt by free blocks)."""
    return input_tokens + (output_tokens / 2 if eng.continuous_batching else output_tokens)


def decode(arch: ModelArch, device: Device, precision: str, kv_precision: str | None, tp: int, pp: int,
           batch: int, input_tokens: int, output_tokens: int, engine: str | EngineProfile | None = None,
           tuning: Tuning | None = None) -> DecodeEstimate:
    """Decode with `batch` sequences in flight, each between input_tokens and input+output of context.

    TBT is the step time at the average context (input + output/2). Under pp the batch is split into pp
    micro-batches that keep every stage busy: the step time is that of the whole model, throughput is
    batch / step. step_s_base + step_s_per_seq * batch is the tangent at this batch (finite difference)."""
    _check_parallelism(device, tp, pp, batch)
    if output_tokens < 1 or input_tokens < 0:
        raise HetcError(f"output_tokens must be >= 1 and input_tokens >= 0 (got {output_tokens}, {input_tokens})")
    tuning, eng = tuning or TUNING, engine_profile(engine or arch.engine, device)
    kv_precision = kv_precision or precision
    _, used = compute_rate(device, precision, tuning)
    context = input_tokens + output_tokens / 2
    step = _decode_step(arch, device, precision, kv_precision, tp, pp, batch, context, eng, tuning)
    other = _decode_step(arch, device, precision, kv_precision, tp, pp, batch + 1, context, eng, tuning)
    per_seq = other.time_s - step.time_s
    tokens_per_s = batch / step.time_s
    devices = tp * pp
    held = memory_per_device(arch, precision, kv_precision, tp, pp, batch,
                             _held_context(eng, input_tokens, output_tokens), batch, eng)
    capacity = _capacity(arch, device, precision, tp, pp, eng)
    return DecodeEstimate(
        tbt_s=step.time_s, step_s_base=step.time_s - per_seq * batch, step_s_per_seq=per_seq,
        tokens_per_s=tokens_per_s, tokens_per_s_per_device=tokens_per_s / devices,
        requests_per_s=tokens_per_s / output_tokens, flops_per_step=step.flops, bytes_per_step=step.bytes,
        compute_s=step.compute_s, memory_s=step.memory_s, comm_s=step.comm_s,
        bound=_bound(step.compute_s, step.memory_s, step.comm_s, step.overhead_s),
        memory_bytes=held, capacity_bytes=capacity, fits=held <= capacity, devices=devices, batch=batch,
        context_tokens=context, compute_precision=used)


def serve(arch: ModelArch, device: Device, precision: str, kv_precision: str | None, tp: int, pp: int,
          batch: int, input_tokens: int, output_tokens: int, engine: str | EngineProfile | None = None,
          tuning: Tuning | None = None) -> ServeEstimate:
    """Prefill and decode on the same replica. Each of the `batch` requests is prefilled once per output
    run: static batching waits for the whole batch's prefill, then decodes; continuous batching interleaves
    the prefill chunks into decode steps, so the same prefill work lands between the steps (interference)."""
    first = prefill(arch, device, precision, tp, pp, 1, input_tokens, kv_precision, engine, tuning)
    whole = prefill(arch, device, precision, tp, pp, batch, input_tokens, kv_precision, engine, tuning)
    steps = decode(arch, device, precision, kv_precision, tp, pp, batch, input_tokens, output_tokens, engine, tuning)
    cycle_s = whole.latency_s + output_tokens * steps.tbt_s
    tokens_per_s = batch * output_tokens / cycle_s
    return ServeEstimate(
        ttft_s=first.latency_s, tbt_s=steps.tbt_s, tokens_per_s=tokens_per_s,
        tokens_per_s_per_device=tokens_per_s / steps.devices, requests_per_s=batch / cycle_s, prefill=whole,
        decode=steps, fits=steps.fits and first.fits, devices=steps.devices)


def max_batch(arch: ModelArch, device: Device, precision: str, tp: int, pp: int, input_tokens: int,
              output_tokens: int, kv_precision: str | None = None, tbt_s: float | None = None,
              ttft_s: float | None = None, phase: str = "decode", limit: int | None = None,
              engine: str | EngineProfile | None = None, tuning: Tuning | None = None) -> int:
    """Largest batch that fits memory, the engine's batch cap and the target: TBT for phase="decode", the
    prefill latency of the whole batch <= ttft_s for phase="prefill". 0 when not even one sequence does."""
    if phase not in ("decode", "prefill"):
        raise HetcError(f"phase must be decode or prefill, got {phase!r}")
    eng = engine_profile(engine or arch.engine, device)
    limit = min(limit or eng.max_batch, eng.max_batch)

    def ok(batch: int) -> bool:
        if phase == "decode":
            est = decode(arch, device, precision, kv_precision, tp, pp, batch, input_tokens, output_tokens, eng,
                         tuning)
            return est.fits and (tbt_s is None or est.tbt_s <= tbt_s)
        est = prefill(arch, device, precision, tp, pp, batch, input_tokens, kv_precision, eng, tuning)
        return est.fits and (ttft_s is None or est.latency_s <= ttft_s)

    if not ok(1):
        return 0
    low, high = 1, limit  # step time and memory grow with batch: binary search the last feasible one
    if ok(high):
        return high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low


def min_tp(arch: ModelArch, device: Device, precision: str, kv_precision: str | None = None, pp: int = 1,
           batch: int = 1, input_tokens: int = 0, output_tokens: int = 1,
           engine: str | EngineProfile | None = None) -> int | None:
    """Smallest valid tensor-parallel degree whose memory fits the batch; None if none."""
    kv_precision = kv_precision or precision
    eng = engine_profile(engine or arch.engine, device)
    for tp in valid_tp(device, arch):
        held = memory_per_device(arch, precision, kv_precision, tp, pp, batch,
                                 _held_context(eng, input_tokens, output_tokens), max(batch, input_tokens), eng)
        if held <= _capacity(arch, device, precision, tp, pp, eng):
            return tp
    return None


# ---------------------------------------------------------------------------------------------- KV transfer
def kv_bytes(arch: ModelArch, kv_precision: str, tokens: float, batch: int = 1) -> float:
    """Paper §6: 2 * L * d_model * (h_kv / h) * tokens * batch * bytes_per_element."""
    return arch.kv_cache_bytes(tokens, precision_bytes(kv_precision)) * batch


def kv_transfer_s(arch: ModelArch, kv_precision: str, tokens: float, src: Device, dst: Device,
                  same_chassis: bool) -> float:
    """Move one request's KV cache: bytes / shared link bandwidth + link latency. Same chassis (and both
    with a scale-up link) uses the scale-up link, otherwise the slower of the two NICs (RoCE/Ethernet)."""
    size = kv_bytes(arch, kv_precision, tokens)
    if same_chassis and src.scaleup_gbs and dst.scaleup_gbs and src.scaleup_link == dst.scaleup_link:
        link_gbs = min(src.scaleup_gbs, dst.scaleup_gbs)
        latency_us = max(src.scaleup_latency_us or 0.0, dst.scaleup_latency_us or 0.0)
    else:
        link_gbs = min(src.scaleout_gbs, dst.scaleout_gbs)
        latency_us = max(src.scaleout_latency_us, dst.scaleout_latency_us)
    return size / (link_gbs * 1e9) + latency_us * 1e-6


def kv_egress_gbps(arch: ModelArch, kv_precision: str, input_tokens: float, ttft_s: float, batch: int = 1,
                   n_prefill_devices: int = 1) -> float:
    """Paper §6: peak egress = KV bytes / (TTFT * n_prefill_devices), in Gbit/s."""
    return kv_bytes(arch, kv_precision, input_tokens, batch) * 8 / (ttft_s * n_prefill_devices) / 1e9


def kv_ingress_gbps(arch: ModelArch, kv_precision: str, input_tokens: float, tbt_s: float, batch: int = 1,
                    n_decode_devices: int = 1) -> float:
    """Paper §6: peak ingress = KV bytes / (TBT * n_decode_devices), in Gbit/s."""
    return kv_bytes(arch, kv_precision, input_tokens, batch) * 8 / (tbt_s * n_decode_devices) / 1e9

