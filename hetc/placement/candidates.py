"""Estimate: for every granular op, the ways it can run (device class, tp, pp, batch) and what each costs.

This is the bridge between the IR, the cost model (hetc.model.costmodel) and the placement solver
(hetc.placement): it turns a task op into `Candidate`s. Batches are tried in powers of two up to the
largest that meets the op's phase limit and fits memory; candidates dominated on the same device (slower
and no cheaper per invocation) are dropped so the solver sees only real trade-offs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hetc.errors import HetcError
from hetc.hwdb.schema import Device
from hetc.model import costmodel as cm
from hetc.model.models import ModelArch
from hetc.placement.model import Candidate

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Candidates kept per device and op after pruning: enough to span latency vs cost, few enough for the MILP.
MAX_PER_DEVICE = 6
# A tool call mostly waits on the network: one CPU socket multiplexes this many calls in flight (an
# asyncio/HTTP client pool; assumption, documented in docs/placement.md).
TOOL_CONCURRENCY_PER_SOCKET = 256
# Model ops on a CPU need the weights to fit in host memory and a usable matrix engine: we only offer
# CPU candidates for models below this size (assumption: beyond it CPU latency is never competitive).
CPU_MODEL_PARAMS_MAX = 20e9


# Replicas are planned so that each is busy at most this fraction of the time: queueing delay grows without
# bound as utilisation approaches 1 (M/M/c: at 80 % with 4+ servers the mean wait stays below ~20 % of the
# service time). A common capacity-planning margin; the simulator (hetc simulate) checks the result.
TARGET_UTILISATION = 0.8


def _candidate(device: str, latency_ms: float, peak_rps: float, **kwargs) -> Candidate:
    """A candidate whose planning throughput keeps TARGET_UTILISATION headroom; the peak stays in metrics."""
    metrics = dict(kwargs.pop("metrics", {}))
    if math.isfinite(peak_rps):
        metrics["peak_throughput_rps"] = peak_rps
    return Candidate(device, latency_ms, peak_rps * TARGET_UTILISATION, metrics=metrics, **kwargs)


def kv_link_bound(cand: Candidate, kv_peak_rps: float | None) -> Candidate:
    """The candidate with its planning throughput at most TARGET_UTILISATION of the KV moves per second its
    replica's links carry (hetc.placement.problem._size_kv_links); unchanged when the links are not the
    bound (or None: it takes part in no move between classes)."""
    if kv_peak_rps is None or kv_peak_rps * TARGET_UTILISATION >= cand.throughput_rps:
        return cand
    return replace(cand, throughput_rps=kv_peak_rps * TARGET_UTILISATION,
                   metrics={**cand.metrics, "peak_throughput_rps": kv_peak_rps},
                   label=f"{cand.label}, KV-link-bound" if cand.label else "KV-link-bound")


@dataclass(frozen=True)
class ModelInfo:
    arch: ModelArch
    precision: str
    kv_precision: str


@dataclass(frozen=True)
class Limits:
    ttft_ms: float | None
    tbt_ms: float | None


def _cpu(device: Device) -> bool:
    return device.kind == "cpu"


def can_compute(device: Device, precision: str) -> bool:
    """Whether the device has a matrix engine for this precision or a wider one (hetc.model.costmodel fallbacks)."""
    try:
        cm.compute_rate(device, precision)
    except HetcError:
        return False
    return True


def can_run(device: Device, precision: str, active_params: float) -> bool:
    """Whether a model of this precision and size may run on the device at all (CPUs only small models)."""
    return can_compute(device, precision) and not (_cpu(device) and active_params > CPU_MODEL_PARAMS_MAX)


def _prune(cands: list[Candidate]) -> list[Candidate]:
    """Drop candidates dominated on their own device; keep at most MAX_PER_DEVICE spread over latency."""
    out: list[Candidate] = []
    by_device: dict[str, list[Candidate]] = {}
    for c in cands:
        by_device.setdefault(c.device, []).append(c)
    for device in sorted(by_device):
        group = sorted(by_device[device], key=lambda c: (c.latency_ms, _device_seconds(c)))
        front: list[Candidate] = []
        best = math.inf
        for c in group:  # ascending latency: keep when strictly cheaper per invocation than all faster ones
            cost = _device_seconds(c)
            if cost < best * (1 - 1e-9):
                front.append(c)
                best = cost
        if len(front) > MAX_PER_DEVICE:
            step = (len(front) - 1) / (MAX_PER_DEVICE - 1)
            front = [front[round(i * step)] for i in range(MAX_PER_DEVICE)]
        out.extend(front)
    return out


def batch_service(first_ms: float, batch_ms: float, batch: int) -> dict[str, float]:
    """Batch latency as ms_base + ms_per_item * b, through the batch-1 and the chosen batch's latency
    (for the simulator); with batch 1 alone the whole latency counts per item."""
    if batch <= 1:
        return {"ms_base": 0.0, "ms_per_item": first_ms}
    per_item = max(0.0, (batch_ms - first_ms) / (batch - 1))
    return {"ms_base": max(0.0, first_ms - per_item), "ms_per_item": per_item}


def _device_seconds(c: Candidate) -> float:
    """Device-seconds one invocation costs: what a replica of this candidate charges per invocation."""
    return c.devices_per_replica / c.throughput_rps if c.throughput_rps > 0 else math.inf


def prefill_candidates(model: ModelInfo, devices: list[Device], input_tokens: int, limits: Limits,
                       ttft_overhead_ms: float = 0.0) -> list[Candidate]:
    """ttft_ms = the batch's prefill + ttft_overhead_ms (first decode step and KV move, from the caller)."""
    out = []
    for dev in devices:
        if not can_run(dev, model.precision, model.arch.active_params()):
            continue
        for tp in cm.valid_tp(dev, model.arch):
            first_ms = None
            for batch in BATCHES:
                est = cm.prefill(model.arch, dev, model.precision, tp, 1, batch, input_tokens, model.kv_precision)
                if not est.fits:
                    break
                ms = est.latency_s * 1e3
                first_ms = ms if first_ms is None else first_ms
                ttft_ms = ms + ttft_overhead_ms
                if limits.ttft_ms is not None and ttft_ms > limits.ttft_ms:
                    break
                out.append(_candidate(dev.id, ms, batch / est.latency_s, tp=tp, batch=batch,
                                     metrics={"ttft_ms": ttft_ms, "memory_gb": est.memory_bytes / 1e9,
                                              **batch_service(first_ms, ms, batch)},
                                     label=f"{est.bound}-bound"))
    return _prune(out)


def decode_candidates(model: ModelInfo, devices: list[Device], input_tokens: int, output_tokens: int,
                      limits: Limits) -> list[Candidate]:
    out = []
    for dev in devices:
        if not can_run(dev, model.precision, model.arch.active_params()):
            continue
        for tp in cm.valid_tp(dev, model.arch):
            for batch in BATCHES:
                est = cm.decode(model.arch, dev, model.precision, model.kv_precision, tp, 1, batch, input_tokens,
                                output_tokens)
                if not est.fits:
                    break
                tbt_ms = est.tbt_s * 1e3
                if limits.tbt_ms is not None and tbt_ms > limits.tbt_ms:
                    break
                out.append(_candidate(dev.id, tbt_ms * output_tokens, est.requests_per_s, tp=tp, batch=batch,
                                     metrics={"tbt_ms": tbt_ms, "memory_gb": est.memory_bytes / 1e9,
                                              "tokens_per_s_per_device": est.tokens_per_s_per_device,
                                              "step_ms_base": est.step_s_base * 1e3,
                                              "step_ms_per_seq": est.step_s_per_seq * 1e3},
                                     label=f"{est.bound}-bound"))
    return _prune(out)


def _batched(devices: list[Device], estimate, model_params: float, limit_ms: float | None = None,
             precision: str = "fp32") -> list[Candidate]:
    """Candidates for a model op without tensor parallelism: estimate(device, batch) -> OpEstimate."""
    out = []
    for dev in devices:
        if not can_run(dev, precision, model_params):
            continue
        first_ms = None
        for batch in BATCHES[:6]:
            est = estimate(dev, batch)
            if not est.fits:
                break
            ms = est.latency_s * 1e3
            first_ms = ms if first_ms is None else first_ms
            if limit_ms is not None and ms > limit_ms and batch > 1:
                break
            out.append(_candidate(dev.id, ms, batch / est.latency_s, batch=batch,
                                 metrics={"memory_gb": est.memory_bytes / 1e9, **batch_service(first_ms, ms, batch)},
                                 label=f"{est.bound}-bound"))
    return _prune(out)


def encoder_candidates(model: ModelInfo, devices: list[Device], input_tokens: int, output_tokens: int,
                       ) -> list[Candidate]:
    return _batched(devices, lambda dev, b: cm.encoder_model(model.arch, dev, model.precision, input_tokens, b,
                                                              output_tokens), model.arch.params(),
                    precision=model.precision)


def tts_candidates(model: ModelInfo, devices: list[Device], audio_seconds: float) -> list[Candidate]:
    return _batched(devices, lambda dev, b: cm.tts(model.arch, dev, model.precision, audio_seconds, b),
                    model.arch.params(), precision=model.precision)


def vector_search_candidates(devices: list[Device], n_vectors: int, dim: int, precision: str, index: str
                             ) -> list[Candidate]:
    bytes_per = cm.precision_bytes(precision)
    return _batched(devices, lambda dev, b: cm.vector_search(n_vectors, dim, bytes_per, dev, index, batch=b), 0)


def tool_candidates(devices: list[Device], latency_ms: float, request_kb: float, response_kb: float
                    ) -> list[Candidate]:
    out = []
    for dev in devices:
        if not _cpu(dev):
            continue
        ms = cm.tool_latency_s(latency_ms, request_kb, response_kb, dev) * 1e3
        out.append(_candidate(dev.id, ms, TOOL_CONCURRENCY_PER_SOCKET / (ms / 1e3) if ms > 0 else math.inf,
                             label="http-client"))
    return out


def cpu_candidates(devices: list[Device], cpu_ms: float) -> list[Candidate]:
    out = []
    for dev in devices:
        if not _cpu(dev):
            continue
        seconds = cm.cpu_compute(cpu_ms)
        cores = dev.cores or 1  # a CPU without a core count runs one task at a time
        throughput = cores / seconds if seconds > 0 else math.inf
        out.append(_candidate(dev.id, cpu_ms, throughput, label=f"{cores} cores"))
    return out


def prefill_ms(model: ModelInfo, device: Device, tp: int, input_tokens: int) -> float | None:
    """One request's prefill at batch 1 on `tp` devices, or None when the model does not fit."""
    est = cm.prefill(model.arch, device, model.precision, tp, 1, 1, input_tokens, model.kv_precision)
    return est.latency_s * 1e3 if est.fits else None


def decode_tbt_ms(model: ModelInfo, device: Device, tp: int, input_tokens: int, output_tokens: int) -> float | None:
    """The time between tokens at batch 1 on `tp` devices, or None when the model does not fit."""
    est = cm.decode(model.arch, device, model.precision, model.kv_precision, tp, 1, 1, input_tokens, output_tokens)
    return est.tbt_s * 1e3 if est.fits else None
