"""Benchmark: generated CPU kernels (hetc's x86-64-v3 object file, loaded with llvmlite MCJIT) vs numpy.

    python bench/kernels.py [--repeat 5] [--small]

For each kernel: median wall time over `--repeat` runs of the generated code and of an idiomatic, vectorised
numpy implementation of the same computation, the bytes each must move (inputs read once + outputs written
once) as GB/s, and the ratio numpy time / hetc time (> 1: hetc is faster). The generated kernels are
single-threaded; numpy's matrix-vector products use OpenBLAS with its own threading settings (left as found).
Shapes are realistic for the kernels' uses (see SHAPES); `--small` divides the large ones by 10 for a quick run.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time

import numpy as np

from hetc.model.models import PRESETS
from hetc.targets import get_target
from hetc.targets import reference as ref
from hetc.targets.kernels import (
    KernelSpec,
    decode_kernels,
    embed_kernels,
    kv_transfer_kernels,
    prefill_kernels,
    vector_search_kernels,
)

_CT = {"f32": ctypes.c_float, "i64": ctypes.c_int64}


class Jit:
    def __init__(self, kernels: list[KernelSpec]):
        import llvmlite.binding as llvm_b

        from hetc.targets.cpu.target import target_machine

        self.files = get_target("cpu").emit(kernels, "x86-64")
        self.engine = llvm_b.create_mcjit_compiler(llvm_b.parse_assembly(""), target_machine("x86-64", jit=True))
        self.engine.add_object_file(llvm_b.ObjectFileRef.from_data(self.files["hetc_kernels.o"]))
        self.engine.finalize_object()
        self.specs = {k.name: k for k in kernels}

    def fn(self, name: str, *args):
        spec = self.specs[name]
        argtypes = [ctypes.c_void_p if a.is_pointer else _CT[a.elem] for a in spec.args]
        cfn = ctypes.CFUNCTYPE(None, *argtypes)(self.engine.get_function_address(name))
        values = [a.ctypes.data if d.is_pointer else a for a, d in zip(args, spec.args, strict=True)]
        return lambda: cfn(*values)


def median_s(fn, repeat: int) -> float:
    fn()  # warm-up (page faults, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---- numpy baselines (vectorised; the semantics of hetc/targets/reference.py) ---------------------------------

def np_cosine_topk(matrix, query, k):
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    scores = (matrix @ query) / (norms * np.linalg.norm(query))
    idx = np.argpartition(-scores, k)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


def np_dot_topk(matrix, query, k):
    scores = matrix @ query
    idx = np.argpartition(-scores, k)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


def np_sample(logits, temperature, top_p, uniform, k):
    z = logits * np.float32(1 / temperature)
    m = z.max(axis=1, keepdims=True)
    total = np.exp(z - m).sum(axis=1)
    top = np.argpartition(-z, k, axis=1)[:, :k]
    topz = np.take_along_axis(z, top, 1)
    order = np.argsort(-topz, axis=1, kind="stable")
    top, topz = np.take_along_axis(top, order, 1), np.take_along_axis(topz, order, 1)
    q = np.exp(topz - m)
    cum = np.cumsum(q, axis=1)
    keep = np.minimum((cum < top_p * cum[:, -1:]).sum(axis=1), k - 1)
    target = uniform * cum[np.arange(len(cum)), keep]
    pick = np.minimum((cum <= target[:, None]).sum(axis=1), keep)
    rows = np.arange(len(cum))
    return top[rows, pick], q[rows, pick] / total


def np_rmsnorm(x, w, eps):
    return x * (1 / np.sqrt((x * x).mean(axis=1, keepdims=True) + eps)) * w


def np_gelu(a):
    return 0.5 * a * (1 + np.tanh(ref.GELU_C * (a + ref.GELU_A * a * a * a)))


def np_pool(h, mask):
    m = (mask != 0).astype(np.float32)
    mean = np.einsum("bsd,bs->bd", h, m) / np.maximum(m.sum(axis=1), 1)[:, None]
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), ref.L2_EPS)


def np_kv_pack(kv, bt, qdtype):
    n_l, _, n_t, n_h, d = kv.shape
    x = kv.astype(np.float32).reshape(n_l, 2, n_t // bt, bt, n_h, d)
    scale = np.abs(x).max(axis=(3, 5)) / np.float32(448.0 if qdtype == "fp8_e4m3" else 127.0)
    inv = np.where(scale > 0, 1 / np.where(scale > 0, scale, 1), 0).astype(np.float32)
    y = x * inv[:, :, :, None, :, None]
    codes = ref.fp8_e4m3_encode(y) if qdtype == "fp8_e4m3" else np.clip(np.rint(y), -127, 127).astype(np.int8)
    return codes, scale


def np_kv_unpack(codes, scales, bt, qdtype):
    vals = ref.fp8_e4m3_decode(codes) if qdtype == "fp8_e4m3" else codes.view(np.int8).astype(np.float32)
    n_l, _, n_t, n_h, d = codes.shape
    v = vals.reshape(n_l, 2, n_t // bt, bt, n_h, d) * scales[:, :, :, None, :, None]
    return v.astype(np.float16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="divide the large shapes by 10")
    opts = parser.parse_args(argv)
    div = 10 if opts.small else 1
    rng = np.random.default_rng(0)
    llama = PRESETS["llama-3-8b"]
    kernels = (vector_search_kernels("cos", None, {"dim": 768, "top_k": 10})
               + vector_search_kernels("dot", None, {"dim": 768, "top_k": 10, "metric": "dot"})
               + decode_kernels("llama", llama, {"top_k": 50})
               + prefill_kernels("llama", llama, {})
               + embed_kernels("bge", PRESETS["bge-large-en-v1.5"], {})
               + kv_transfer_kernels("kvf8", llama, {"block_tokens": 16})
               + kv_transfer_kernels("kvi8", llama, {"kv_dtype": "int8", "block_tokens": 16}))
    jit = Jit(kernels)
    rows: list[tuple[str, str, float, float, float]] = []

    def bench(label: str, shape: str, nbytes: int, hetc_fn, numpy_fn) -> None:
        t_h, t_n = median_s(hetc_fn, opts.repeat), median_s(numpy_fn, opts.repeat)
        rows.append((label, shape, t_h, t_n, nbytes))
        print(f"{label:<24} {shape:<26} hetc {t_h * 1e3:9.2f} ms {nbytes / t_h / 1e9:7.2f} GB/s   "
              f"numpy {t_n * 1e3:9.2f} ms {nbytes / t_n / 1e9:7.2f} GB/s   numpy/hetc {t_n / t_h:6.2f}x",
              flush=True)

    # vector search: 200k x 768 fp32, one query, top-10
    n = 200_000 // div
    matrix = rng.standard_normal((n, 768), dtype=np.float32)
    query = rng.standard_normal((1, 768), dtype=np.float32)
    oi, os_ = np.zeros((1, 10), np.int32), np.zeros((1, 10), np.float32)
    for metric in ("cos", "dot"):
        fn = jit.fn(f"hetc_{metric}_search", matrix, n, query, 1, oi, os_)
        np_fn = np_cosine_topk if metric == "cos" else np_dot_topk
        bench(f"{'cosine' if metric == 'cos' else 'dot'} top-10", f"{n}x768 f32", matrix.nbytes, fn,
              lambda np_fn=np_fn, matrix=matrix: np_fn(matrix, query[0], 10))
        np.testing.assert_array_equal(oi[0], np_fn(matrix, query[0], 10))
    del matrix

    # fused softmax + top-k 50 + top-p 0.9 sampling over 64 x 128256 logits (Llama 3 vocabulary)
    logits = rng.standard_normal((64, llama.vocab_size), dtype=np.float32) * 3
    uniform = rng.random(64, dtype=np.float32)
    tok, prob = np.zeros(64, np.int32), np.zeros(64, np.float32)
    fn = jit.fn("hetc_llama_sample", logits, 64, 0.8, 0.9, uniform, tok, prob)
    bench("softmax+top-k/top-p", f"64x{llama.vocab_size} f32", logits.nbytes, fn,
          lambda: np_sample(logits, 0.8, 0.9, uniform, 50))
    fn()
    np.testing.assert_array_equal(tok, np_sample(logits, 0.8, 0.9, uniform, 50)[0])

    # RMSNorm over a prefill chunk: 2048 tokens x d_model 4096
    x = rng.standard_normal((2048 // div, llama.d_model), dtype=np.float32)
    w = rng.random(llama.d_model, dtype=np.float32)
    out = np.empty_like(x)
    bench("rmsnorm", f"{x.shape[0]}x{x.shape[1]} f32", 2 * x.nbytes,
          jit.fn("hetc_llama_rmsnorm", x, w, x.shape[0], out), lambda: np_rmsnorm(x, w, 1e-5))

    # element-wise over 16M floats (a 4096 x 4096 activation)
    m = 16 * 1024 * 1024 // div
    a, b, o = (rng.standard_normal(m, dtype=np.float32) for _ in range(3))
    bench("add", f"{m} f32", 3 * a.nbytes, jit.fn("hetc_llama_add", a, b, o, m), lambda: np.add(a, b, out=o))
    bench("mul", f"{m} f32", 3 * a.nbytes, jit.fn("hetc_llama_mul", a, b, o, m), lambda: np.multiply(a, b, out=o))
    bench("gelu (tanh)", f"{m} f32", 2 * a.nbytes, jit.fn("hetc_llama_gelu", a, o, m), lambda: np_gelu(a))

    # embedding mean-pool + L2 norm: 64 sequences x 512 tokens x 1024 (bge-large)
    h = rng.standard_normal((64 // (div if div > 1 else 1), 512, 1024), dtype=np.float32)
    mask = (rng.random(h.shape[:2]) < 0.8).astype(np.int32)
    pooled = np.empty((h.shape[0], 1024), np.float32)
    bench("mean-pool+l2norm", f"{h.shape[0]}x512x1024 f32", h.nbytes,
          jit.fn("hetc_bge_pool", h, mask, h.shape[0], 512, pooled), lambda h=h: np_pool(h, mask))
    del h

    # KV cache of 2048 tokens of Llama-3-8B (32 layers x K/V x 8 heads x 128), fp16 -> fp8 / int8
    n_t = 2048 // div
    kv = (rng.standard_normal((32, 2, n_t, 8, 128), dtype=np.float32)).astype(np.float16)
    codes = np.empty(kv.shape, np.uint8)
    scales = np.empty((32, 2, n_t // 16, 8), np.float32)
    back = np.empty(kv.shape, np.uint16)
    for tag, q in (("kvf8", "fp8_e4m3"), ("kvi8", "int8")):
        bench(f"kv pack {q}", f"{n_t} tok llama-3-8b", kv.nbytes * 3 // 2,
              jit.fn(f"hetc_{tag}_kv_pack", kv.view(np.uint16), n_t, codes, scales),
              lambda q=q: np_kv_pack(kv, 16, q))
        bench(f"kv unpack {q}", f"{n_t} tok llama-3-8b", kv.nbytes * 3 // 2,
              jit.fn(f"hetc_{tag}_kv_unpack", codes, scales, n_t, back),
              lambda q=q: np_kv_unpack(codes, scales, 16, q))

    slower = [r[0] for r in rows if r[3] / r[2] < 1]
    print(f"\nkernels where hetc is slower than numpy: {', '.join(slower) if slower else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
