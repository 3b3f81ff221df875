"""The cost model: latency, throughput and memory of granular operators on a device class.

Roofline per operator (reference/paper-method.md §2, reference/llm-perf-model.md):

    time = max(FLOPs / (peak * eff_compute), bytes / (peak_bw * eff_bw)) + communication + fixed overhead

LLM prefill and decode are modelled from the architecture (dense or MoE); tensor parallelism (tp) divides
compute, weights and KV cache and adds two ring all-reduces per layer over the scale-up link; pipeline
parallelism (pp) splits the layers and adds stage hand-offs. Pure Python: called thousands of times by
placement, so no I/O and no heavy imports here. Every constant below says what it is and where it comes from;
docs/cost-model.md has the derivations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hetc.errors import HetcError
from hetc.hwdb.schema import Device
from hetc.model.engines import EngineProfile, engine_profile
from hetc.model.models import PRECISION_BYTES, ModelArch

# ---------------------------------------------------------------------------------------------- constants
# Vendors' "80 GB" of HBM are binary gigabytes: an H100 80GB reports 81,559 MiB total in nvidia-smi
# (https://docs.nvidia.com/datacenter/tesla/pdf/Hopper-Architecture-Whitepaper.pdf: 80 GB HBM3 = 5 stacks
# of 16 GiB). hwdb's mem_gb is read as GiB for capacity.
GIB = 2 ** 30
# Memory outside any engine's fraction: CUDA/HIP context, NCCL buffers, allocator slack, about 1 GiB per
# device (estimate: vLLM's profiler reports 0.5-1.5 GiB of "non-torch memory" on H100s).
RUNTIME_RESERVED_BYTES = 1.0 * GIB
# Activations are kept in 16 bits by every engine we model (bf16/fp16 residual stream), whatever the
# weight precision (FP8/INT8/FP4 checkpoints quantise weights and GEMM inputs, not the residual stream).
ACTIVATION_BYTES = 2.0
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
# https://arxiv.org/abs/1603.09320), each needing one distance of dim multiply-adds.


@dataclass(frozen=True)
class Tuning:
    """The few parameters calibrated on published measurements, shared by every device (so a device
    nobody measured is predicted from its datasheet): `hetc.model.calibrate.fit_shared` fits them, the
    defaults below are its fit on hetc/data/measured-llm.yaml (docs/cost-model.md#accuracy)."""

    # multipliers on the hwdb efficiency of large GEMMs, per precision class (16-bit, 8-bit, 4-bit)
    gemm_16: float = 1.069
    gemm_8: float = 0.9601
    gemm_4: float = 0.6577  # FP4 GEMMs reach about two thirds of the efficiency hwdb assumes (few published kernels)
    bw: float = 0.851  # multiplier on hwdb eff_bw for weight reads
    attention_bw: float = 0.9233  # decode attention reads KV at this share of the GEMMs' achieved bandwidth
    attention_compute: float = 0.619  # prefill attention FLOP rate as a share of the GEMMs'
    gemm_half_m: float = 71.57  # GEMM rows (tokens) at which a GEMM reaches half its large-shape efficiency
    overhead_scale: float = 1.036  # multiplier on the engine's per-step overhead
    allreduce_s: float = 1.115e-05  # fixed cost of one all-reduce (kernel launch and synchronisation)
    seq_overhead_scale: float = 3.584  # multiplier on the engine's host time per sequence per step
    allreduce_bw: float = 0.6006  # share of the scale-up link's bandwidth an all-reduce achieves (bus bandwidth)


TUNING = Tuning()
# Calibrated multipliers never push an efficiency beyond this share of peak.
MAX_EFFICIENCY = 0.95

# If a device has no peak for a precision, the work runs at the next wider format it supports: weight-only
# quantisation upcasts weights to 16-bit GEMM inputs (e.g. FP8 checkpoints on A100, FP16 on Gaudi = BF16).
_COMPUTE_FALLBACK = {
    "fp4": ("fp4", "fp8", "bf16", "fp16", "fp32"),
    "int4": ("bf16", "fp16", "fp32"),
    "fp8": ("fp8", "bf16", "fp16", "fp32"),
    "int8": ("int8", "bf16", "fp16", "fp32"),
    "fp16": ("fp16", "bf16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),
    "fp32": ("fp32",),
}


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


@dataclass(frozen=True)
class OpEstimate:
    """A non-LLM operator (embedding, speech, TTS, vector search)."""

    latency_s: float
    flops: float
    bytes: float
    bound: str
    memory_bytes: float
    fits: bool


# ---------------------------------------------------------------------------------------------- helpers
def precision_bytes(precision: str) -> float:
    try:
        return PRECISION_BYTES[precision]
    except KeyError:
        raise HetcError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISION_BYTES)}") from None


def _gemm_multiplier(tuning: Tuning, precision: str) -> float:
    if precision in ("fp4", "int4"):
        return tuning.gemm_4
    if precision in ("fp8", "int8"):
        return tuning.gemm_8
    return tuning.gemm_16


def compute_rate(device: Device, precision: str, tuning: Tuning | None = None) -> tuple[float, str]:
    """Achievable FLOP/s of large GEMMs in `precision` (peak x efficiency), and the precision actually used."""
    tuning = tuning or TUNING
    precision_bytes(precision)  # reject unknown names first
    for candidate in _COMPUTE_FALLBACK.get(precision, ()):
        peak = device.peak_tflops.get(candidate)
        if peak:
            eff = device.eff_compute.get(candidate, 0.5) * _gemm_multiplier(tuning, candidate)
            return peak * 1e12 * min(MAX_EFFICIENCY, eff), candidate
    raise HetcError(f"device {device.id} cannot compute in {precision!r} (peaks: "
                    + ", ".join(k for k, v in device.peak_tflops.items() if v) + ")")


def gemm_shape_factor(rows: float, tuning: Tuning | None = None) -> float:
    """Share of the large-GEMM rate a GEMM with `rows` tokens reaches: rows / (rows + half_m). Small-M decode
    GEMMs leave tensor cores idle (tile quantisation, too few thread blocks to fill the device)."""
    tuning = tuning or TUNING
    return rows / (rows + tuning.gemm_half_m)


def memory_rate(device: Device, tuning: Tuning | None = None) -> float:
    """Achievable memory bandwidth of weight-streaming GEMMs, B/s."""
    tuning = tuning or TUNING
    return device.mem_bw_gbs * 1e9 * min(MAX_EFFICIENCY, device.eff_bw * tuning.bw)


def usable_memory_bytes(device: Device, engine: str | EngineProfile | None = None, weights_bytes: float = 0.0) -> float:
    """Bytes per device the engine lets weights, KV cache and activations use. A fraction of the whole device
    (vLLM, SGLang), or the weights plus a fraction of what they leave free (TensorRT-LLM); either way less
    RUNTIME_RESERVED_BYTES."""
    eng = engine_profile(engine, device)
    total = device.mem_gb * GIB - RUNTIME_RESERVED_BYTES
    if eng.of_free:
        return weights_bytes + eng.memory_fraction * max(0.0, total - weights_bytes)
    return device.mem_gb * GIB * eng.memory_fraction - RUNTIME_RESERVED_BYTES


def paged_tokens(tokens: float, block_tokens: int = 16) -> float:
    """KV slots a sequence occupies: whole blocks of the engine's block size."""
    return math.ceil(tokens / block_tokens) * block_tokens


def valid_tp(device: Device, arch: ModelArch) -> list[int]:
    """Tensor-parallel degrees inside one chassis that divide the attention heads (powers of two)."""
    out, tp = [], 1
    while tp <= device.max_tp:
        if arch.n_heads % tp == 0:
            out.append(tp)
        tp *= 2
    return out


def _check_parallelism(device: Device, tp: int, pp: int, batch: int) -> None:
    if tp < 1 or pp < 1 or batch < 1:
        raise HetcError(f"tp, pp and batch must be >= 1 (got tp={tp}, pp={pp}, batch={batch})")
    if tp > device.max_tp:
        raise HetcError(f"tp={tp} exceeds what one {device.id} chassis allows ({device.max_tp}): tensor "
                        "parallelism stays on the scale-up link")


def distinct_experts(arch: ModelArch, tokens: float) -> float:
    """Expected experts per layer touched by `tokens` routed uniformly to k of E: E * (1 - (1 - k/E)^B)."""
    e, k = arch.n_experts, arch.experts_per_token
    return e * (1.0 - (1.0 - k / e) ** tokens)


def weight_bytes_read(arch: ModelArch, weight_bytes: float, tokens: float) -> float:
    """Weight bytes one forward pass over `tokens` tokens reads (MoE: only the routed experts it touches)."""
    if not arch.is_moe:
        return arch.params() * weight_bytes
    expert = arch.expert_params()
    routed_total = arch.moe_layers() * arch.n_experts * expert
    touched = arch.moe_layers() * distinct_experts(arch, tokens) * expert
    return (arch.params() - routed_total + touched) * weight_bytes


def _kv_split(arch: ModelArch, tp: int) -> int:
    # KV heads are sharded across tp; beyond n_kv_heads they are replicated (MLA's latent: always).
    return 1 if arch.kv_lora_rank else min(tp, arch.n_kv_heads)


def _allreduce_s(device: Device, tp: int, message_bytes: float, tuning: Tuning | None = None) -> float:
    """One all-reduce: a fixed launch/synchronisation cost (calibrated), the fabric's hop latency over
    2 * log2(p) steps (NCCL's tree/NVLS and RCCL/HCCL's small-message algorithms), and 2(p-1)/p of the
    buffer over each device's link at the calibrated share of its bandwidth (ring bandwidth term)."""
    if tp == 1:
        return 0.0
    tuning = tuning or TUNING
    link = device.scaleup_gbs * 1e9 * tuning.allreduce_bw
    hops = 2 * math.ceil(math.log2(tp))
    return (tuning.allreduce_s + hops * (device.scaleup_latency_us or 0.0) * 1e-6
            + 2 * (tp - 1) / tp * message_bytes / link)


def _handoff_s(device: Device, tp: int, pp: int, message_bytes: float) -> float:
    """pp-1 stage hand-offs; over the scale-up link while the replica fits one chassis, else scale-out."""
    if pp == 1:
        return 0.0
    if tp * pp <= device.devices_per_chassis and device.scaleup_gbs:
        link, latency_us = device.scaleup_gbs, device.scaleup_latency_us or 0.0
    else:
        link, latency_us = device.scaleout_gbs, device.scaleout_latency_us
    return (pp - 1) * (message_bytes / (link * 1e9) + latency_us * 1e-6)


def _activation_bytes(arch: ModelArch, tokens: float, tp: int) -> float:
    # transient buffers of one layer: residual + attention output + QKV (~4 d) and the MLP intermediate
    # (gate and up, 2 d_ff / tp), in 16 bits, for every token in flight
    return tokens * (4 * arch.d_model + 2 * arch.d_ff / tp) * ACTIVATION_BYTES


def _bound(compute_s: float, memory_s: float, comm_s: float, overhead_s: float) -> str:
    parts = {"compute": compute_s, "memory": memory_s, "network": comm_s, "overhead": overhead_s}
    return max(parts, key=lambda k: (parts[k], k == "compute"))


def _step_overhead_s(engine: EngineProfile, tuning: Tuning) -> float:
    return engine.step_overhead_s * tuning.overhead_scale


def _seq_overhead_s(engine: EngineProfile, tuning: Tuning, sequences: float) -> float:
    """The engine's host time for `sequences` scheduled in one pass (0 unless it schedules in Python)."""
    return sequences * engine.seq_overhead_s * tuning.seq_overhead_scale


# ---------------------------------------------------------------------------------------------- LLM phases
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


# ---------------------------------------------------------------------------------------------- non-LLM ops
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
