"""The cost model's building blocks: what a device achieves (GEMM and memory rates after calibration, usable
memory), what parallelism costs (all-reduces, pipeline hand-offs, activations), and the engine's fixed
overheads per step and per sequence. hetc.model.llm and hetc.model.ops compose them into estimates;
hetc.model.costmodel is the public API. Every constant says what it is and where it comes from;
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

