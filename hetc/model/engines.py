"""Serving-engine profiles: what an engine adds to the roofline and how much memory it leaves for KV.

The engine is part of the performance: per-step overhead (scheduler, sampling, kernel launches; lower with
CUDA/HPU graphs), memory reserved (utilisation fraction of the whole device, or of what the weights leave),
the batch cap (max sequences scheduled at once), chunked prefill and the KV block size. A spec model's
`engine:` (ModelArch.engine) or `hetc estimate --engine` picks a profile; the default is what the deployment
launches (plan.json's stage engine): the vLLM Gaudi fork on Gaudi, vLLM elsewhere. lmdeploy and gpt-fast
exist for the published measurements the model is calibrated on (docs/cost-model.md#engines).
"""

from __future__ import annotations

from dataclasses import dataclass

from hetc.errors import HetcError


@dataclass(frozen=True)
class EngineProfile:
    name: str
    # Fixed time per forward pass (scheduling, sampling, launches, host sync), seconds, before the
    # calibrated scale (costmodel.Tuning.overhead_scale). Estimates: no engine publishes it; ordering
    # from the engines' own descriptions (CUDA graphs, C++ vs Python scheduler, overlap scheduling).
    step_overhead_s: float
    # Memory the engine lets itself use. of_free=False: a fraction of the whole device (vLLM
    # --gpu-memory-utilization, SGLang --mem-fraction-static); of_free=True: a fraction of what is free
    # after the weights are loaded (TensorRT-LLM kv_cache_config.free_gpu_memory_fraction).
    memory_fraction: float
    of_free: bool
    kv_block_tokens: int  # paged-KV block size
    max_batch: int  # sequences scheduled together at most
    prefill_chunk_tokens: int  # tokens per scheduler step with chunked prefill (0 = whole prompts)
    continuous_batching: bool  # False: a batch runs to completion before the next (static batching)
    graphs: bool  # CUDA/HPU graphs for decode steps
    sources: str
    # Host time per scheduled sequence per step (Python scheduling, sampling and detokenisation), seconds,
    # before the calibrated scale (costmodel.Tuning.seq_overhead_scale): 0 for engines whose per-sequence
    # host work is in C++ or overlapped with the GPU. Estimate, like step_overhead_s.
    seq_overhead_s: float = 0.0


ENGINES: dict[str, EngineProfile] = {
    "vllm": EngineProfile(
        "vllm", step_overhead_s=600e-6, memory_fraction=0.90, of_free=False, kv_block_tokens=16, max_batch=256,
        prefill_chunk_tokens=8192, continuous_batching=True, graphs=True,
        sources="https://docs.vllm.ai/en/latest/configuration/engine_args.html (--gpu-memory-utilization 0.9, "
                "--block-size 16, --max-num-seqs 256, chunked prefill on in V1 with --max-num-batched-tokens "
                "8192 for servers); CUDA graphs: https://docs.vllm.ai/en/latest/design/cuda_graphs.html"),
    "vllm-v0": EngineProfile(
        "vllm-v0", step_overhead_s=600e-6, memory_fraction=0.90, of_free=False, kv_block_tokens=16, max_batch=256,
        prefill_chunk_tokens=0, continuous_batching=True, graphs=True, seq_overhead_s=100e-6,
        sources="vLLM <= 0.6 as its own benchmark scripts run it (the V0 engine): same memory and batch "
                "defaults as vllm (https://docs.vllm.ai/en/v0.6.0/models/engine_args.html), no chunked prefill "
                "by default; scheduling, sampling and incremental detokenisation run in Python per sequence on "
                "every step, the CPU overhead vLLM V1 removed (https://blog.vllm.ai/2025/01/27/v1-alpha-release.html)"),
    "sglang": EngineProfile(
        "sglang", step_overhead_s=400e-6, memory_fraction=0.88, of_free=False, kv_block_tokens=1, max_batch=1024,
        prefill_chunk_tokens=8192, continuous_batching=True, graphs=True,
        sources="https://docs.sglang.ai/advanced_features/server_arguments.html (--mem-fraction-static about "
                "0.88 on 80 GB GPUs, --page-size 1, --chunked-prefill-size 8192 on H100-class GPUs, "
                "overlap scheduler hides CPU time: lower overhead than vLLM)"),
    "trtllm": EngineProfile(
        "trtllm", step_overhead_s=300e-6, memory_fraction=0.90, of_free=True, kv_block_tokens=32, max_batch=2048,
        prefill_chunk_tokens=8192, continuous_batching=True, graphs=True,
        sources="https://nvidia.github.io/TensorRT-LLM/ (KvCacheConfig.free_gpu_memory_fraction 0.9 of the memory "
                "left after weights; tokens_per_block 32; LLM API max_batch_size 2048, max_num_tokens 8192; "
                "C++ batch manager with CUDA graphs)"),
    "vllm-gaudi": EngineProfile(
        "vllm-gaudi", step_overhead_s=1500e-6, memory_fraction=0.90, of_free=False, kv_block_tokens=128,
        max_batch=256, prefill_chunk_tokens=0, continuous_batching=True, graphs=True,
        sources="https://github.com/vllm-project/vllm-gaudi (HPU graphs, bucketed shapes, block_size 128, "
                "gpu_memory_utilization 0.9); https://docs.habana.ai/en/latest/PyTorch/Inference_on_PyTorch/"
                "vLLM_Inference.html; host overhead per step is larger than on CUDA (bucketing, graph replay)"),
    "lmdeploy": EngineProfile(
        "lmdeploy", step_overhead_s=400e-6, memory_fraction=0.80, of_free=True, kv_block_tokens=64, max_batch=128,
        prefill_chunk_tokens=0, continuous_batching=False, graphs=False,
        sources="https://lmdeploy.readthedocs.io/en/latest/ (TurboMind: cache_max_entry_count 0.8 of free "
                "memory, cache_block_seq_len 64, max_batch_size 128); its published figures are static batches"),
    "gpt-fast": EngineProfile(
        "gpt-fast", step_overhead_s=100e-6, memory_fraction=0.90, of_free=False, kv_block_tokens=1, max_batch=1,
        prefill_chunk_tokens=0, continuous_batching=False, graphs=True,
        sources="https://github.com/pytorch-labs/gpt-fast (torch.compile mode=reduce-overhead: one CUDA graph "
                "per decode step, batch 1, static KV cache)"),
}
DEFAULT_ENGINE = "vllm"


def default_engine(device=None) -> str:
    """What the deployment launches on the device (hetc/bundle/plan.py's stage engine): vllm-gaudi on Gaudi,
    vLLM elsewhere."""
    return "vllm-gaudi" if device is not None and getattr(device, "target", "") == "gaudi" else DEFAULT_ENGINE


def engine_profile(engine: str | EngineProfile | None, device=None) -> EngineProfile:
    """The named profile; None = the default for `device`."""
    if isinstance(engine, EngineProfile):
        return engine
    name = (engine or default_engine(device)).strip().lower()
    try:
        return ENGINES[name]
    except KeyError:
        raise HetcError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}") from None
