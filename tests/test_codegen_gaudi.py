"""gaudi target: every TPC-C kernel and its host glue are compiled with clang against our emulation header
(hetc/targets/gaudi/tpc_emu.h), run over an index space split across several emulated TPC cores, and compared
with the numpy reference. Tolerances as in test_codegen_cpu.py (the emulation's exp is libm's expf)."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import system_tool

from hetc.model.models import PRESETS
from hetc.targets import get_target
from hetc.targets import reference as ref
from hetc.targets.gaudi.target import EMU_HEADER, TPC_CORES
from hetc.targets.kernels import (
    KINDS,
    KernelSpec,
    decode_kernels,
    embed_kernels,
    kv_transfer_kernels,
    prefill_kernels,
    vector_search_kernels,
)

ARCH = PRESETS["llama-3-8b"].with_overrides(vocab_size=5000, d_model=200, n_layers=2, n_kv_heads=2, n_heads=2)
KERNELS = (
    decode_kernels("dec", ARCH, {"top_k": 20})
    + prefill_kernels("pre", ARCH, {})
    + embed_kernels("emb", ARCH, {})
    + vector_search_kernels("vs", None, {"dim": 72, "top_k": 6})
    + vector_search_kernels("vsd", None, {"dim": 64, "top_k": 4, "metric": "dot"})
    + kv_transfer_kernels("kv", ARCH, {"block_tokens": 8})
    + kv_transfer_kernels("kv8", ARCH, {"kv_dtype": "int8", "block_tokens": 16})
)
SPECS = {k.name: k for k in KERNELS}
_C_SCALAR = {"i64": "(int)sizes[{j}]", "f32": "(float)scalars[{j}]"}


def test_every_kind_is_covered() -> None:
    assert {k.kind for k in KERNELS} == set(KINDS)


@pytest.fixture(scope="module", params=sorted(TPC_CORES))
def built(request, tmp_path_factory) -> tuple[str, dict[str, ctypes.CDLL]]:
    variant = request.param
    cc = system_tool("clang")
    target = get_target("gaudi")
    files = target.emit(KERNELS, variant)
    target.verify(files, variant, require_tool=True)
    root = tmp_path_factory.mktemp(variant)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    folder = root / variant
    (folder / EMU_HEADER.name).write_bytes(EMU_HEADER.read_bytes())
    libs = {}
    for spec in KERNELS:
        libs[spec.name] = ctypes.CDLL(str(_build(cc, folder, spec)))
    return variant, libs


def _build(cc: str, folder: Path, spec: KernelSpec) -> Path:
    """One translation unit: the emulation header, the kernel (main renamed), and a launcher that uses the
    generated glue to describe the tensors and splits index-space dim 0 over `parts` emulated cores."""
    n_tensors = sum(a.is_pointer for a in spec.args)
    scalars = [_C_SCALAR[a.elem].format(j=j) for j, a in enumerate(a for a in spec.args if not a.is_pointer)]
    call = ", ".join([f"t[{i}]" for i in range(n_tensors)] + scalars)
    driver = folder / f"{spec.name}_driver.c"
    driver.write_text(f"""
#define HETC_TPC_EMU 1
#define main hetc_tpc_entry
#include "{spec.name}.c"
#undef main
#include "hetc_tpc_glue.h"
int hetc_run(void **buffers, const int64_t *sizes, const double *scalars, int parts) {{
    hetc_tpc_launch L;
    if ({spec.name}_glue(sizes, &L) != 0 || L.n_tensors != {n_tensors}) return -1;
    tensor t[HETC_TPC_MAX_TENSORS];
    for (int i = 0; i < L.n_tensors; ++i)
        t[i] = tpc_emu_tensor(buffers[i], L.tensors[i].elem_bytes, L.tensors[i].dims, L.tensors[i].size);
    const int n0 = L.index_space[0];
    for (int p = 0; p < parts; ++p) {{
        int lo = (int)((int64_t)n0 * p / parts), hi = (int)((int64_t)n0 * (p + 1) / parts);
        if (lo == hi) continue;
        tpc_emu_offset = (int5){{lo, 0, 0, 0, 0}};
        tpc_emu_size = (int5){{hi - lo, L.index_space[1], L.index_space[2], L.index_space[3], L.index_space[4]}};
        hetc_tpc_entry({call});
    }}
    return 0;
}}
""")
    lib = folder / f"{spec.name}.so"
    proc = subprocess.run([cc, "-std=gnu11", "-O1", "-march=x86-64-v3", "-Wno-psabi", "-shared", "-fPIC",
                           "-I", str(folder), str(driver), str(folder / f"{spec.name}_glue.c"), "-o", str(lib),
                           "-lm"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return lib


def run(built, name: str, *args, parts: int = 3) -> None:
    """Call kernel `name` with ABI-ordered arguments (numpy arrays for pointers)."""
    _, libs = built
    spec = SPECS[name]
    buffers = [a for a, d in zip(args, spec.args, strict=True) if d.is_pointer]
    scalars = [float(a) for a, d in zip(args, spec.args, strict=True) if not d.is_pointer]
    sizes = [int(a) for a, d in zip(args, spec.args, strict=True) if not d.is_pointer]
    ptrs = (ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers])
    rc = libs[name].hetc_run(ptrs, (ctypes.c_int64 * len(sizes))(*sizes),
                             (ctypes.c_double * len(scalars))(*scalars), parts)
    assert rc == 0


def test_glue_header_and_determinism(built) -> None:
    variant, _ = built
    files = get_target("gaudi").emit(KERNELS, variant)
    assert files == get_target("gaudi").emit(list(reversed(KERNELS)), variant)
    header = files[f"{variant}/hetc_tpc_glue.h"].decode()
    for spec in KERNELS:
        assert f"int {spec.name}_glue(const int64_t *sizes, hetc_tpc_launch *out);" in header
        src = files[f"{variant}/{spec.name}.c"].decode()
        assert "void main(tensor " in src and "get_index_space_offset()" in src
    assert f"out->tpc_cores = {TPC_CORES[variant]};" in files[f"{variant}/hetc_pre_add_glue.c"].decode()


def test_elementwise(built) -> None:
    rng = np.random.default_rng(1)
    n = 1000  # not a multiple of 64
    a = rng.standard_normal(n).astype(np.float32) * 4
    b = rng.standard_normal(n).astype(np.float32)
    for op in ("add", "mul"):
        out = np.zeros(n, np.float32)
        run(built, f"hetc_pre_{op}", a, b, out, n)
        np.testing.assert_array_equal(out, ref.elementwise(SPECS[f"hetc_pre_{op}"], a, b))
    out = np.zeros(n, np.float32)
    run(built, "hetc_pre_gelu", a, out, n)
    np.testing.assert_allclose(out, ref.elementwise(SPECS["hetc_pre_gelu"], a), rtol=1e-5, atol=1e-6)


def test_rmsnorm(built) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, ARCH.d_model)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, ARCH.d_model).astype(np.float32)
    out = np.zeros_like(x)
    run(built, "hetc_pre_rmsnorm", x, w, 7, out)
    np.testing.assert_allclose(out, ref.rmsnorm(SPECS["hetc_pre_rmsnorm"], x, w), rtol=1e-5, atol=1e-5)


def test_embed_pool(built) -> None:
    rng = np.random.default_rng(3)
    h = rng.standard_normal((4, 9, ARCH.d_model)).astype(np.float32)
    mask = (rng.random((4, 9)) < 0.6).astype(np.int32)
    mask[1] = 0
    out = np.full((4, ARCH.d_model), 5, np.float32)
    run(built, "hetc_emb_pool", h, mask, 4, 9, out)
    np.testing.assert_allclose(out, ref.embed_pool(SPECS["hetc_emb_pool"], h, mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,n_rows", [("hetc_vs_search", 500), ("hetc_vsd_search", 300),
                                         ("hetc_vs_search", 3)])
def test_vector_search(built, name: str, n_rows: int) -> None:
    s = SPECS[name]
    dim, k = int(s.p("dim")), int(s.p("top_k"))
    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((n_rows, dim)).astype(np.float32)
    matrix[n_rows // 2] = 0
    queries = rng.standard_normal((5, dim)).astype(np.float32)
    out_i = np.zeros((5, k), np.int32)
    out_s = np.zeros((5, k), np.float32)
    run(built, name, matrix, n_rows, queries, 5, out_i, out_s)
    want_i, want_s = ref.vector_search(s, matrix, queries)
    np.testing.assert_array_equal(out_i, want_i)
    np.testing.assert_allclose(out_s, want_s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 0.9), (0.6, 1.0), (1.5, 0.3)])
def test_sampling(built, temperature: float, top_p: float) -> None:
    s = SPECS["hetc_dec_sample"]
    rows = 6
    rng = np.random.default_rng(int(temperature * 10 + top_p * 100))
    logits = (rng.standard_normal((rows, ARCH.vocab_size)) * 3).astype(np.float32)
    logits[1, 100:4000] = -np.inf
    uniform = rng.random(rows).astype(np.float32)
    tokens = np.zeros(rows, np.int32)
    probs = np.zeros(rows, np.float32)
    run(built, "hetc_dec_sample", logits, rows, temperature, top_p, uniform, tokens, probs)
    want_t, want_p = ref.sample(s, logits, temperature, top_p, uniform)
    np.testing.assert_array_equal(tokens, want_t)
    np.testing.assert_allclose(probs, want_p, rtol=1e-4)


@pytest.mark.parametrize("prefix,n_tokens", [("kv", 21), ("kv8", 40)])
def test_kv_round_trip(built, prefix: str, n_tokens: int) -> None:
    pack, unpack = SPECS[f"hetc_{prefix}_kv_pack"], SPECS[f"hetc_{prefix}_kv_unpack"]
    rng = np.random.default_rng(n_tokens)
    shape = (ARCH.n_layers, 2, n_tokens, ARCH.n_kv_heads, ARCH.head_dim)
    kv = (rng.standard_normal(shape) * rng.uniform(0.01, 30, (1, 2, 1, ARCH.n_kv_heads, 1))).astype(np.float16)
    kv[1, 0, :, 1] = 0
    want_codes, want_scales = ref.kv_quantize(pack, kv)
    codes = np.zeros(shape, np.uint8)
    scales = np.zeros(want_scales.shape, np.float32)
    run(built, pack.name, kv.view(np.uint16), n_tokens, codes, scales)
    np.testing.assert_array_equal(scales, want_scales)
    differ = codes != want_codes  # one code step, only at a rounding boundary (see test_codegen_cpu)
    if differ.any():
        assert differ.mean() < 1e-3
        assert np.abs(codes.astype(np.int16) - want_codes.astype(np.int16))[differ].max() == 1
    out = np.zeros(shape, np.uint16)
    run(built, unpack.name, codes, scales, n_tokens, out)
    np.testing.assert_array_equal(out.view(np.float16), ref.kv_dequantize(unpack, codes, scales))
