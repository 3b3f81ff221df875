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
from hetc.models import PRECISION_BYTES, ModelArch

# ---------------------------------------------------------------------------------------------- constants
# Paged attention allocates the KV cache in blocks of 16 tokens (vLLM's default --block-size 16;
# https://docs.vllm.ai/en/latest/serving/engine_args.html).
KV_BLOCK_TOKENS = 16
# Share of device memory an engine lets itself use; the rest is CUDA context, allocator slack, graphs.
# vLLM's default --gpu-memory-utilization is 0.9 (same page; also
# https://huggingface.co/neuralmagic/Mistral-7B-Instruct-v0.3-GPTQ-4bit/discussions/1).
ENGINE_MEMORY_FRACTION = 0.90
# Fixed time per forward pass (kernel launches, sampling, scheduler): "tens to hundreds of microseconds"
# (reference/llm-perf-model.md). 200 us is the middle of that range for engines with CUDA graphs; it is
# the intercept calibration fits against (docs/cost-model.md#overheads).
STEP_OVERHEAD_S = 200e-6
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
# HNSW visits about ef * log2(N) nodes per query (reference/llm-perf-model.md; Malkov & Yashunin,
# https://arxiv.org/abs/1603.09320), each needing one distance of dim multiply-adds.

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


def compute_rate(device: Device, precision: str) -> tuple[float, str]:
    """Achievable FLOP/s for GEMMs in `precision` (peak x efficiency), and the precision actually used."""
    precision_bytes(precision)  # reject unknown names first
    for candidate in _COMPUTE_FALLBACK.get(precision, ()):
        peak = device.peak_tflops.get(candidate)
        if peak:
            return peak * 1e12 * device.eff_compute.get(candidate, 0.5), candidate
    raise HetcError(f"device {device.id} cannot compute in {precision!r} (peaks: "
                    + ", ".join(k for k, v in device.peak_tflops.items() if v) + ")")


def memory_rate(device: Device) -> float:
    """Achievable memory bandwidth, B/s."""
    return device.mem_bw_gbs * 1e9 * device.eff_bw


def usable_memory_bytes(device: Device) -> float:
    return device.mem_gb * 1e9 * ENGINE_MEMORY_FRACTION


def paged_tokens(tokens: float) -> float:
    """KV slots a sequence occupies: whole blocks of KV_BLOCK_TOKENS."""
    return math.ceil(tokens / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS


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


def _mlp_params(arch: ModelArch) -> int:
    return (3 if arch.kind == "decoder" else 2) * arch.d_model * arch.d_ff


def distinct_experts(arch: ModelArch, tokens: float) -> float:
    """Expected experts per layer touched by `tokens` routed uniformly to k of E: E * (1 - (1 - k/E)^B)."""
    e, k = arch.n_experts, arch.experts_per_token
    return e * (1.0 - (1.0 - k / e) ** tokens)


def weight_bytes_read(arch: ModelArch, weight_bytes: float, tokens: float) -> float:
    """Weight bytes one forward pass over `tokens` tokens reads (MoE: only the experts it touches)."""
    if not arch.is_moe:
        return arch.params() * weight_bytes
    expert_total = arch.n_layers * arch.n_experts * _mlp_params(arch)
    shared = arch.params() - expert_total
    touched = arch.n_layers * distinct_experts(arch, tokens) * _mlp_params(arch)
    return (shared + touched) * weight_bytes


def _kv_split(arch: ModelArch, tp: int) -> int:
    # KV heads are sharded across tp; beyond n_kv_heads they are replicated.
    return min(tp, arch.n_kv_heads)


def _allreduce_s(device: Device, tp: int, message_bytes: float) -> float:
    """Ring all-reduce: 2(p-1)/p of the buffer over each device's link plus 2(p-1) hop latencies."""
    if tp == 1:
        return 0.0
    link = device.scaleup_gbs * 1e9
    return 2 * (tp - 1) / tp * message_bytes / link + 2 * (tp - 1) * device.scaleup_latency_us * 1e-6


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


# ---------------------------------------------------------------------------------------------- LLM phases
def prefill_flops(arch: ModelArch, batch: int, input_tokens: int) -> float:
    """2 * P_active * tokens + causal attention 2 * L * h * d_h * T^2 per sequence."""
    tokens = batch * input_tokens
    attention = 2 * arch.n_layers * arch.n_heads * arch.head_dim * input_tokens ** 2 * batch
    return 2 * arch.active_params() * tokens + attention


def decode_step_flops(arch: ModelArch, batch: int, context_tokens: float) -> float:
    """2 * P_active per token + attention over the context: 4 * L * h * d_h * C."""
    return batch * (2 * arch.active_params() + 4 * arch.n_layers * arch.n_heads * arch.head_dim * context_tokens)


def decode_step_bytes(arch: ModelArch, precision: str, kv_precision: str, batch: int,
                      context_tokens: float) -> float:
    """Weights once per step (experts touched, for MoE) + every sequence's KV cache."""
    kv = arch.kv_bytes_per_token(precision_bytes(kv_precision))
    return weight_bytes_read(arch, precision_bytes(precision), batch) + batch * context_tokens * kv


def memory_per_device(arch: ModelArch, precision: str, kv_precision: str, tp: int, pp: int, batch: int,
                      context_tokens: float, tokens_in_flight: float) -> float:
    """Weights/(tp*pp) + paged KV of the batch at `context_tokens` + activations of the tokens in flight."""
    weights = arch.params() * precision_bytes(precision) / (tp * pp)
    kv = arch.kv_bytes_per_token(precision_bytes(kv_precision))
    kv_cache = batch * paged_tokens(context_tokens) * kv / (_kv_split(arch, tp) * pp)
    return weights + kv_cache + _activation_bytes(arch, tokens_in_flight, tp)


def prefill(arch: ModelArch, device: Device, precision: str, tp: int, pp: int, batch: int,
            input_tokens: int, kv_precision: str | None = None) -> PhaseEstimate:
    """Prefill of `batch` prompts of `input_tokens` tokens on one replica (tp x pp devices)."""
    _check_parallelism(device, tp, pp, batch)
    kv_precision = kv_precision or precision
    rate, used = compute_rate(device, precision)
    tokens = batch * input_tokens
    flops = prefill_flops(arch, batch, input_tokens)
    kv = arch.kv_bytes_per_token(precision_bytes(kv_precision))
    traffic = weight_bytes_read(arch, precision_bytes(precision), tokens) + tokens * kv
    # the layers run one stage after another, so pp adds capacity, not speed, for one batch
    compute_s = flops / (tp * rate)
    memory_s = traffic / (tp * memory_rate(device))
    message = tokens * arch.d_model * ACTIVATION_BYTES
    comm_s = 2 * arch.n_layers * _allreduce_s(device, tp, message) + _handoff_s(device, tp, pp, message)
    latency = max(compute_s, memory_s) + comm_s + STEP_OVERHEAD_S
    held = memory_per_device(arch, precision, kv_precision, tp, pp, batch, input_tokens, tokens)
    capacity = usable_memory_bytes(device)
    return PhaseEstimate(
        latency_s=latency, flops=flops, bytes=traffic, compute_s=compute_s, memory_s=memory_s, comm_s=comm_s,
        bound=_bound(compute_s, memory_s, comm_s, STEP_OVERHEAD_S), memory_bytes=held, capacity_bytes=capacity,
        fits=held <= capacity, devices=tp * pp, compute_precision=used)


def decode(arch: ModelArch, device: Device, precision: str, kv_precision: str | None, tp: int, pp: int,
           batch: int, input_tokens: int, output_tokens: int) -> DecodeEstimate:
    """Decode with `batch` sequences in flight, each between input_tokens and input+output of context.

    TBT is the step time at the average context (input + output/2); memory is checked at the full context
    (input + output) since every sequence reaches it. Under pp the batch is split into pp micro-batches
    that keep every stage busy: the step time is that of the whole model, throughput is batch / step.
    """
    _check_parallelism(device, tp, pp, batch)
    if output_tokens < 1 or input_tokens < 0:
        raise HetcError(f"output_tokens must be >= 1 and input_tokens >= 0 (got {output_tokens}, {input_tokens})")
    kv_precision = kv_precision or precision
    rate, used = compute_rate(device, precision)
    bw = memory_rate(device)
    context = input_tokens + output_tokens / 2
    kv = arch.kv_bytes_per_token(precision_bytes(kv_precision))
    weights_read = weight_bytes_read(arch, precision_bytes(precision), batch)

    flops_per_seq = 2 * arch.active_params() + 4 * arch.n_layers * arch.n_heads * arch.head_dim * context
    compute_per_seq = flops_per_seq / (tp * rate)
    memory_base = weights_read / (tp * bw)
    memory_per_seq = context * kv / (_kv_split(arch, tp) * bw)
    message_per_seq = arch.d_model * ACTIVATION_BYTES
    comm_base = 2 * arch.n_layers * _allreduce_s(device, tp, 0.0) + _handoff_s(device, tp, pp, 0.0)
    comm_per_seq = (2 * arch.n_layers * (_allreduce_s(device, tp, message_per_seq) - _allreduce_s(device, tp, 0.0))
                    + _handoff_s(device, tp, pp, message_per_seq) - _handoff_s(device, tp, pp, 0.0))

    compute_s = compute_per_seq * batch
    memory_s = memory_base + memory_per_seq * batch
    comm_s = comm_base + comm_per_seq * batch
    tbt = max(compute_s, memory_s) + comm_s + STEP_OVERHEAD_S
    if compute_s > memory_s:
        base, per_seq = comm_base + STEP_OVERHEAD_S, compute_per_seq + comm_per_seq
    else:
        base, per_seq = memory_base + comm_base + STEP_OVERHEAD_S, memory_per_seq + comm_per_seq
    tokens_per_s = batch / tbt
    devices = tp * pp
    held = memory_per_device(arch, precision, kv_precision, tp, pp, batch, input_tokens + output_tokens, batch)
    capacity = usable_memory_bytes(device)
    return DecodeEstimate(
        tbt_s=tbt, step_s_base=base, step_s_per_seq=per_seq, tokens_per_s=tokens_per_s,
        tokens_per_s_per_device=tokens_per_s / devices, requests_per_s=tokens_per_s / output_tokens,
        flops_per_step=flops_per_seq * batch, bytes_per_step=weights_read + batch * context * kv,
        compute_s=compute_s, memory_s=memory_s, comm_s=comm_s, bound=_bound(compute_s, memory_s, comm_s,
                                                                              STEP_OVERHEAD_S),
        memory_bytes=held, capacity_bytes=capacity, fits=held <= capacity, devices=devices, batch=batch,
        context_tokens=context, compute_precision=used)


def serve(arch: ModelArch, device: Device, precision: str, kv_precision: str | None, tp: int, pp: int,
          batch: int, input_tokens: int, output_tokens: int) -> ServeEstimate:
    """Prefill and decode on the same replica: each request's prefill is paid once per output run."""
    first = prefill(arch, device, precision, tp, pp, 1, input_tokens, kv_precision)
    whole = prefill(arch, device, precision, tp, pp, batch, input_tokens, kv_precision)
    steps = decode(arch, device, precision, kv_precision, tp, pp, batch, input_tokens, output_tokens)
    cycle_s = whole.latency_s + output_tokens * steps.tbt_s
    tokens_per_s = batch * output_tokens / cycle_s
    return ServeEstimate(
        ttft_s=first.latency_s, tbt_s=steps.tbt_s, tokens_per_s=tokens_per_s,
        tokens_per_s_per_device=tokens_per_s / steps.devices, requests_per_s=batch / cycle_s, prefill=whole,
        decode=steps, fits=steps.fits and first.fits, devices=steps.devices)


def max_batch(arch: ModelArch, device: Device, precision: str, tp: int, pp: int, input_tokens: int,
              output_tokens: int, kv_precision: str | None = None, tbt_s: float | None = None,
              ttft_s: float | None = None, phase: str = "decode", limit: int = 8192) -> int:
    """Largest batch that fits memory and meets the target: TBT for phase="decode", the prefill latency of
    the whole batch <= ttft_s for phase="prefill". 0 when not even one sequence does."""
    if phase not in ("decode", "prefill"):
        raise HetcError(f"phase must be decode or prefill, got {phase!r}")

    def ok(batch: int) -> bool:
        if phase == "decode":
            est = decode(arch, device, precision, kv_precision, tp, pp, batch, input_tokens, output_tokens)
            return est.fits and (tbt_s is None or est.tbt_s <= tbt_s)
        est = prefill(arch, device, precision, tp, pp, batch, input_tokens, kv_precision)
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
           batch: int = 1, input_tokens: int = 0, output_tokens: int = 1) -> int | None:
    """Smallest valid tensor-parallel degree whose memory fits the batch at full context; None if none."""
    kv_precision = kv_precision or precision
    capacity = usable_memory_bytes(device)
    for tp in valid_tp(device, arch):
        held = memory_per_device(arch, precision, kv_precision, tp, pp, batch, input_tokens + output_tokens,
                                 max(batch, input_tokens))
        if held <= capacity:
            return tp
    return None


# ---------------------------------------------------------------------------------------------- KV transfer
def kv_bytes(arch: ModelArch, kv_precision: str, tokens: float, batch: int = 1) -> float:
    """Paper §6: 2 * L * d_model * (h_kv / h) * tokens * batch * bytes_per_element."""
    return arch.kv_bytes_per_token(precision_bytes(kv_precision)) * tokens * batch


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
    return OpEstimate(latency_s=max(compute_s, memory_s) + STEP_OVERHEAD_S, flops=flops, bytes=traffic,
                      bound=_bound(compute_s, memory_s, 0.0, STEP_OVERHEAD_S), memory_bytes=held,
                      fits=held <= usable_memory_bytes(device))


def _encoder_params(arch: ModelArch) -> int:
    return arch.encoder_layers * (4 * arch.d_model ** 2 + _mlp_params(arch))


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
