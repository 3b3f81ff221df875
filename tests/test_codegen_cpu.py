"""cpu target: every kernel kind is emitted, verified by LLVM, loaded from the emitted object file into
llvmlite's MCJIT, called through ctypes on random inputs and compared with the numpy reference.

Tolerances (float32 throughout):
- add / mul: exact (same single IEEE operation);
- gelu: rtol 1e-5, atol 1e-6 (polynomial exp, < 2e-7 relative, plus the tanh identity's rounding);
- rmsnorm, pooling + L2 norm, cosine / dot scores: rtol 1e-5 / atol 1e-5 (summation order: the generated
  code vectorises reductions with `reassoc`);
- sampling: identical token ids (inputs drawn with fixed seeds, so no draw sits on a boundary) and
  probabilities within rtol 1e-4 (sum over 32k exps in another order + polynomial exp);
- vector search: identical indices, scores within rtol 1e-5;
- KV quantisation: int8 codes may differ by 1 and fp8 codes by one ulp step only where x * (1/scale) lies
  within 1e-6 (relative) of a rounding boundary; everything else is bit-identical; scales exact; the
  round trip matches the numpy round trip exactly on the same codes.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from hetc.errors import HetcError
from hetc.model.models import PRESETS
from hetc.targets import get_target
from hetc.targets import reference as ref
from hetc.targets.base import CodegenError
from hetc.targets.kernels import (
    KernelSpec,
    compute_kernels,
    decode_kernels,
    embed_kernels,
    kv_transfer_kernels,
    prefill_kernels,
    vector_search_kernels,
)

_CT = {"f32": ctypes.c_float, "i64": ctypes.c_int64}


class JitKernels:
    """The emitted object file, linked into MCJIT; kernels callable with numpy arrays."""

    def __init__(self, kernels: list[KernelSpec]):
        import llvmlite.binding as llvm_b

        from hetc.targets.cpu.target import target_machine

        target = get_target("cpu")
        self.files = target.emit(kernels, "x86-64")
        target.verify(self.files, "x86-64")
        self.engine = llvm_b.create_mcjit_compiler(llvm_b.parse_assembly(""), target_machine("x86-64", jit=True))
        self.engine.add_object_file(llvm_b.ObjectFileRef.from_data(self.files["hetc_kernels.o"]))
        self.engine.finalize_object()
        self.specs = {k.name: k for k in kernels}

    def __call__(self, name: str, *args) -> None:
        spec = self.specs[name]
        argtypes = [ctypes.c_void_p if a.is_pointer else _CT[a.elem] for a in spec.args]
        fn = ctypes.CFUNCTYPE(None, *argtypes)(self.engine.get_function_address(name))
        converted = []
        for desc, value in zip(spec.args, args, strict=True):
            if desc.is_pointer:
                assert isinstance(value, np.ndarray) and value.flags.c_contiguous
                converted.append(value.ctypes.data)
            else:
                converted.append(value)
        fn(*converted)


ARCH = PRESETS["llama-3-8b"].with_overrides(vocab_size=32000, d_model=256, n_layers=2, n_kv_heads=2,
                                              n_heads=4)
KERNELS = (
    decode_kernels("dec", ARCH, {"top_k": 40})
    + prefill_kernels("pre", ARCH, {})
    + embed_kernels("emb", ARCH, {})
    + vector_search_kernels("vs_cos", None, {"dim": 96, "top_k": 7})
    + vector_search_kernels("vs_dot", None, {"dim": 100, "top_k": 5, "metric": "dot"})
    + kv_transfer_kernels("kv_fp8", ARCH, {"block_tokens": 16})
    + kv_transfer_kernels("kv_i8", ARCH, {"kv_dtype": "int8", "block_tokens": 8})
)


@pytest.fixture(scope="module")
def jit() -> JitKernels:
    return JitKernels(KERNELS)


def spec(name: str) -> KernelSpec:
    return next(k for k in KERNELS if k.name == name)


def test_emitted_files_and_determinism(jit: JitKernels) -> None:
    assert sorted(jit.files) == ["hetc_kernels.h", "hetc_kernels.ll", "hetc_kernels.o"]
    again = get_target("cpu").emit(list(reversed(KERNELS)), "x86-64")
    assert again == jit.files
    header = jit.files["hetc_kernels.h"].decode()
    assert "void hetc_dec_sample(const float * restrict logits, int64_t rows, float temperature" in header
    ll = jit.files["hetc_kernels.ll"].decode()
    assert 'target triple = "x86_64-unknown-linux-gnu"' in ll
    assert "<8 x float>" in ll  # loops were vectorised for AVX2


def test_elementwise(jit: JitKernels) -> None:
    rng = np.random.default_rng(1)
    n = 10_003  # not a multiple of the vector width: exercises the scalar tail
    a = rng.standard_normal(n).astype(np.float32) * 4
    b = rng.standard_normal(n).astype(np.float32)
    for op in ("add", "mul"):
        out = np.zeros(n, np.float32)
        jit(f"hetc_pre_{op}", a, b, out, n)
        np.testing.assert_array_equal(out, ref.elementwise(spec(f"hetc_pre_{op}"), a, b))
    out = np.zeros(n, np.float32)
    jit("hetc_pre_gelu", a, out, n)
    np.testing.assert_allclose(out, ref.elementwise(spec("hetc_pre_gelu"), a), rtol=1e-5, atol=1e-6)
    big = np.array([-100, -20, 0, 20, 100], np.float32)
    out = np.zeros(5, np.float32)
    jit("hetc_pre_gelu", big, out, 5)
    np.testing.assert_allclose(out, [0, 0, 0, 20, 100], atol=1e-6)


def test_elementwise_in_place(jit: JitKernels) -> None:
    a = np.arange(100, dtype=np.float32)
    b = np.ones(100, np.float32)
    jit("hetc_pre_add", a, b, a, 100)
    np.testing.assert_array_equal(a, np.arange(100, dtype=np.float32) + 1)


def test_rmsnorm(jit: JitKernels) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((33, ARCH.d_model)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, ARCH.d_model).astype(np.float32)
    out = np.zeros_like(x)
    jit("hetc_pre_rmsnorm", x, w, 33, out)
    np.testing.assert_allclose(out, ref.rmsnorm(spec("hetc_pre_rmsnorm"), x, w), rtol=1e-5, atol=1e-5)


def test_embed_pool(jit: JitKernels) -> None:
    rng = np.random.default_rng(3)
    h = rng.standard_normal((5, 19, ARCH.d_model)).astype(np.float32)
    mask = (rng.random((5, 19)) < 0.7).astype(np.int32)
    mask[2] = 0  # no token at all: the mean is 0 and so is its normalisation
    out = np.full((5, ARCH.d_model), 7, np.float32)
    jit("hetc_emb_pool", h, mask, 5, 19, out)
    np.testing.assert_allclose(out, ref.embed_pool(spec("hetc_emb_pool"), h, mask), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out[[0, 1, 3, 4]], axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("name,n_rows", [("hetc_vs_cos_search", 3001), ("hetc_vs_dot_search", 2000),
                                         ("hetc_vs_cos_search", 4)])
def test_vector_search(jit: JitKernels, name: str, n_rows: int) -> None:
    s = spec(name)
    dim, k = int(s.p("dim")), int(s.p("top_k"))
    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((n_rows, dim)).astype(np.float32)
    matrix[min(10, n_rows - 1)] = 0  # zero row: cosine score 0
    queries = rng.standard_normal((3, dim)).astype(np.float32)
    out_i = np.zeros((3, k), np.int32)
    out_s = np.zeros((3, k), np.float32)
    jit(name, matrix, n_rows, queries, 3, out_i, out_s)
    want_i, want_s = ref.vector_search(s, matrix, queries)
    np.testing.assert_array_equal(out_i, want_i)
    np.testing.assert_allclose(out_s, want_s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 0.9), (0.7, 1.0), (1.3, 0.5), (1.0, 1e-6)])
def test_sampling(jit: JitKernels, temperature: float, top_p: float) -> None:
    s = spec("hetc_dec_sample")
    rows = 12
    rng = np.random.default_rng(int(temperature * 100 + top_p * 10))
    logits = (rng.standard_normal((rows, ARCH.vocab_size)) * 3).astype(np.float32)
    logits[0, 5:1000] = -np.inf  # masked vocabulary
    uniform = rng.random(rows).astype(np.float32)
    tokens = np.zeros(rows, np.int32)
    probs = np.zeros(rows, np.float32)
    jit("hetc_dec_sample", logits, rows, temperature, top_p, uniform, tokens, probs)
    want_t, want_p = ref.sample(s, logits, temperature, top_p, uniform)
    np.testing.assert_array_equal(tokens, want_t)
    np.testing.assert_allclose(probs, want_p, rtol=1e-4)
    if top_p <= 1e-6:  # nucleus of one token = greedy decoding
        np.testing.assert_array_equal(tokens, logits.argmax(axis=1))


def _kv(rng: np.random.Generator, n_tokens: int) -> np.ndarray:
    shape = (ARCH.n_layers, 2, n_tokens, ARCH.n_kv_heads, ARCH.head_dim)
    kv = (rng.standard_normal(shape) * rng.uniform(0.01, 30, (1, 2, 1, ARCH.n_kv_heads, 1))).astype(np.float16)
    kv[0, 0, :3, 0] = 0  # an all-zero block start: scale 0 only if the whole block is zero
    kv[1, 1, :, 1] = 0  # a whole (layer, V, head) stream of zeros: scale 0, codes 0
    return kv


@pytest.mark.parametrize("prefix,n_tokens", [("kv_fp8", 37), ("kv_i8", 40), ("kv_fp8", 1)])
def test_kv_quantize_round_trip(jit: JitKernels, prefix: str, n_tokens: int) -> None:
    pack, unpack = spec(f"hetc_{prefix}_kv_pack"), spec(f"hetc_{prefix}_kv_unpack")
    rng = np.random.default_rng(n_tokens)
    kv = _kv(rng, n_tokens)
    want_codes, want_scales = ref.kv_quantize(pack, kv)
    codes = np.zeros(kv.shape, np.uint8)
    scales = np.zeros(want_scales.shape, np.float32)
    jit(pack.name, kv.view(np.uint16), n_tokens, codes, scales)
    np.testing.assert_array_equal(scales, want_scales)
    differ = codes != want_codes
    if differ.any():  # only allowed right at a rounding boundary, by one step
        steps = np.abs(codes.astype(np.int16) - want_codes.astype(np.int16))
        assert differ.mean() < 1e-3 and steps[differ].max() == 1
    out = np.zeros(kv.shape, np.uint16)
    jit(unpack.name, codes, scales, n_tokens, out)
    np.testing.assert_array_equal(out.view(np.float16), ref.kv_dequantize(unpack, codes, scales))
    # quantisation error bound: half a code step relative to the block scale
    err = np.abs(out.view(np.float16).astype(np.float32) - kv.astype(np.float32))
    per_token_scale = np.repeat(scales, int(pack.p("block_tokens")), axis=2)[:, :, :n_tokens, :, None]
    bound = per_token_scale * (0.5 if prefix == "kv_i8" else 448 * 2.0**-4) + 2e-3 * np.abs(kv.astype(np.float32))
    assert (err <= bound + 1e-6).all()


def test_fp8_codes_exhaustive(jit: JitKernels) -> None:
    """Every fp16 value through the fp8 pack with scale 1 (a block whose absmax is 448)."""
    pack, unpack = spec("hetc_kv_fp8_kv_pack"), spec("hetc_kv_fp8_kv_unpack")
    n_tokens = 112  # 7 blocks of 16; room for every value and its negation
    shape = (ARCH.n_layers, 2, n_tokens, ARCH.n_kv_heads, ARCH.head_dim)
    values = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16)  # every finite non-negative fp16
    values = values[np.abs(values.astype(np.float32)) <= 448]
    kv = np.zeros(shape, np.float16).reshape(-1)
    kv[: values.size] = values
    kv[values.size: 2 * values.size] = -values
    kv = kv.reshape(shape)
    kv[:, :, ::16, :, 0] = 448  # every block gets absmax 448 -> scale exactly 1
    codes = np.zeros(shape, np.uint8)
    scales = np.zeros((ARCH.n_layers, 2, n_tokens // 16, ARCH.n_kv_heads), np.float32)
    jit(pack.name, kv.view(np.uint16), n_tokens, codes, scales)
    assert (scales == 1).all()
    np.testing.assert_array_equal(codes, ref.fp8_e4m3_encode(kv.astype(np.float32)))
    out = np.zeros(shape, np.uint16)
    jit(unpack.name, codes, scales, n_tokens, out)
    np.testing.assert_array_equal(out.view(np.float16), ref.fp8_e4m3_decode(codes).astype(np.float16))


def test_verify_rejects_broken_ir() -> None:
    target = get_target("cpu")
    files = target.emit(compute_kernels("c", None, {}), "x86-64")
    broken = dict(files)
    broken["hetc_kernels.ll"] = files["hetc_kernels.ll"].replace(b"ret void", b"ret i32 0", 1)
    with pytest.raises(CodegenError, match="LLVM rejected"):
        target.verify(broken, "x86-64")
    with pytest.raises(HetcError, match="unknown variant"):
        target.emit(compute_kernels("c", None, {}), "aarch64")
