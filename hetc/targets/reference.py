"""Executable semantics of every kernel kind, in numpy: the tests and the benchmark compare targets to these.

Arithmetic is float32 like the generated code, so differences come only from summation order and from the
generated code's polynomial exp (relative error < 2e-7 per call); the tests state their tolerances.
"""

from __future__ import annotations

import numpy as np

from .kernels import QMAX, KernelSpec, kv_blocks

GELU_C = np.float32(0.7978845608028654)  # sqrt(2 / pi), tanh approximation of GELU (Hendrycks & Gimpel 2016)
GELU_A = np.float32(0.044715)
L2_EPS = np.float32(1e-12)  # floor of the norm in L2 normalisation (as torch.nn.functional.normalize)


def sample(spec: KernelSpec, logits: np.ndarray, temperature: float, top_p: float,
           uniform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax with temperature, keep the top_k largest logits (ties: lower index first), keep the smallest
    prefix of them whose renormalised mass reaches top_p, then pick the first candidate whose cumulative
    (unnormalised) mass exceeds uniform * kept mass. Returns (token ids, full-softmax prob of the token)."""
    top_k = int(spec.p("top_k"))
    inv_t = np.float32(1) / np.float32(temperature)
    tokens = np.empty(logits.shape[0], np.int32)
    probs = np.empty(logits.shape[0], np.float32)
    for r, row in enumerate(logits.astype(np.float32)):
        scaled = row * inv_t
        order = np.lexsort((np.arange(row.size), -row))[:top_k]
        m = scaled[order[0]]
        total = np.exp(scaled - m, dtype=np.float32).sum(dtype=np.float64)
        q = np.exp(scaled[order] - m).astype(np.float32)
        cum = np.cumsum(q, dtype=np.float32)
        keep = int(np.searchsorted(cum, np.float32(top_p) * cum[-1], side="left")) + 1
        keep = min(keep, top_k)
        target = np.float32(uniform[r]) * cum[keep - 1]
        pick = int(np.argmax(cum[:keep] > target)) if (cum[:keep] > target).any() else keep - 1
        tokens[r] = order[pick]
        probs[r] = q[pick] / np.float32(total)
    return tokens, probs


def vector_search(spec: KernelSpec, matrix: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top_k = int(spec.p("top_k"))
    scores = queries.astype(np.float64) @ matrix.astype(np.float64).T
    if spec.p("metric") == "cosine":
        qn = np.linalg.norm(queries.astype(np.float64), axis=1)[:, None]
        mn = np.linalg.norm(matrix.astype(np.float64), axis=1)[None, :]
        denom = qn * mn
        scores = np.where(denom > 0, scores / np.where(denom > 0, denom, 1), 0.0)
    out_i = np.full((queries.shape[0], top_k), -1, np.int32)
    out_s = np.full((queries.shape[0], top_k), -np.inf, np.float32)
    for q in range(queries.shape[0]):
        order = np.lexsort((np.arange(matrix.shape[0]), -scores[q]))[:top_k]
        out_i[q, : order.size] = order
        out_s[q, : order.size] = scores[q, order]
    return out_i, out_s


def embed_pool(spec: KernelSpec, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = (mask != 0).astype(np.float32)[:, :, None]
    count = np.maximum(m.sum(axis=1), 1)
    mean = (hidden * m).sum(axis=1) / count
    norm = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), L2_EPS)
    return (mean / norm).astype(np.float32)


def rmsnorm(spec: KernelSpec, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    ms = (x.astype(np.float64) ** 2).mean(axis=1, keepdims=True)
    return (x / np.sqrt(ms + float(spec.p("eps"))) * weight).astype(np.float32)


def elementwise(spec: KernelSpec, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    op = spec.p("op")
    if op == "add":
        return a + b
    if op == "mul":
        return a * b
    return (np.float32(0.5) * a * (1 + np.tanh(GELU_C * (a + GELU_A * a * a * a)))).astype(np.float32)


# ---- KV quantisation --------------------------------------------------------------------------------------

def _e4m3_table() -> np.ndarray:
    """Value of every non-negative fp8 e4m3fn code 0..126 (127 = NaN): 4 exponent bits (bias 7), 3 mantissa."""
    codes = np.arange(127)
    exp, mant = codes >> 3, codes & 7
    return np.where(exp == 0, mant * 2.0**-9, (8 + mant) * 2.0 ** (exp - 10)).astype(np.float64)


E4M3_VALUES = _e4m3_table()


def fp8_e4m3_encode(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties to even code, saturating at +-448."""
    a = np.minimum(np.abs(x.astype(np.float64)), 448.0)
    hi = np.clip(np.searchsorted(E4M3_VALUES, a, side="left"), 0, 126)
    lo = np.maximum(hi - 1, 0)
    d_lo, d_hi = a - E4M3_VALUES[lo], E4M3_VALUES[hi] - a
    code = np.where(d_lo < d_hi, lo, np.where(d_hi < d_lo, hi, np.where(lo % 2 == 0, lo, hi)))
    sign = (np.signbit(x) & (code > 0)).astype(np.uint8) << 7
    return (code.astype(np.uint8) | sign).astype(np.uint8)


def fp8_e4m3_decode(codes: np.ndarray) -> np.ndarray:
    mag = E4M3_VALUES[np.minimum(codes & 0x7F, 126)].astype(np.float32)
    return np.where(codes & 0x80, -mag, mag).astype(np.float32)


def _blocked(spec: KernelSpec, n_tokens: int) -> tuple[int, int]:
    return int(spec.p("block_tokens")), kv_blocks(n_tokens, int(spec.p("block_tokens")))


def kv_quantize(spec: KernelSpec, kv_fp16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kv_fp16: [L, 2, T, H, D] float16. Scale per (layer, k/v, block of block_tokens tokens, head) =
    absmax / QMAX; codes = encode(x * (1 / scale)) (0 when the block is all zero)."""
    n_l, _, n_t, n_h, d = kv_fp16.shape
    bt, nb = _blocked(spec, n_t)
    qmax = np.float32(QMAX[spec.p("qdtype")])
    x = kv_fp16.astype(np.float32)
    codes = np.empty(x.shape, np.uint8)
    scales = np.empty((n_l, 2, nb, n_h), np.float32)
    for b in range(nb):
        blk = x[:, :, b * bt:(b + 1) * bt]  # [L, 2, bt, H, D]
        absmax = np.abs(blk).max(axis=(2, 4))  # [L, 2, H]
        scale = (absmax / qmax).astype(np.float32)
        inv = np.where(scale > 0, np.float32(1) / np.where(scale > 0, scale, 1), 0).astype(np.float32)
        y = blk * inv[:, :, None, :, None]
        if spec.p("qdtype") == "int8":
            c = np.clip(np.rint(y), -127, 127).astype(np.int8).view(np.uint8)
        else:
            c = fp8_e4m3_encode(y)
        codes[:, :, b * bt:(b + 1) * bt] = c
        scales[:, :, b] = scale
    return codes, scales


def kv_dequantize(spec: KernelSpec, codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    n_t = codes.shape[2]
    bt, nb = _blocked(spec, n_t)
    if spec.p("qdtype") == "int8":
        vals = codes.view(np.int8).astype(np.float32)
    else:
        vals = fp8_e4m3_decode(codes)
    per_token = np.repeat(scales, bt, axis=2)[:, :, :n_t]  # [L, 2, T, H]
    return (vals * per_token[..., None]).astype(np.float16)
