"""cuda target: every kernel kind is compiled to PTX by LLVM's NVPTX backend and assembled by ptxas for
sm_80, sm_90 and sm_100 (ptxas from the nvidia-cuda-nvcc test dependency; without it these tests skip, or fail
under HETC_REQUIRE_TOOLS=1)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import system_tool

from hetc.model.models import PRESETS
from hetc.targets import get_target
from hetc.targets.base import CodegenError
from hetc.targets.cuda.target import SM_VERSIONS, find_ptxas
from hetc.targets.kernels import (
    KINDS,
    compute_kernels,
    decode_kernels,
    embed_kernels,
    kv_transfer_kernels,
    prefill_kernels,
    vector_search_kernels,
)

ARCH = PRESETS["llama-3-8b"]
KERNELS = (
    decode_kernels("dec", ARCH, {})
    + prefill_kernels("pre", ARCH, {})
    + embed_kernels("emb", PRESETS["bge-large-en-v1.5"], {})
    + vector_search_kernels("vs", None, {"dim": 768, "top_k": 10})
    + vector_search_kernels("vsd", None, {"dim": 1024, "metric": "dot"})
    + kv_transfer_kernels("kv", ARCH, {})
    + kv_transfer_kernels("kv8", ARCH, {"kv_dtype": "int8", "block_tokens": 32})
)


def test_every_kind_is_covered() -> None:
    assert {k.kind for k in KERNELS} == set(KINDS)


def test_tests_use_the_ptxas_hetc_uses() -> None:
    assert system_tool("ptxas") == find_ptxas()


@pytest.mark.parametrize("variant", SM_VERSIONS)
def test_assemble_every_kernel(variant: str) -> None:
    system_tool("ptxas")
    target = get_target("cuda")
    files = target.emit(KERNELS, variant)
    assert sorted(files) == [f"{variant}/hetc_kernels.cubin", f"{variant}/hetc_kernels.ptx",
                             f"{variant}/launch.json"]
    target.verify(files, variant, require_tool=True)  # runs ptxas -arch=<variant>
    ptx = files[f"{variant}/hetc_kernels.ptx"].decode()
    cubin = files[f"{variant}/hetc_kernels.cubin"]
    assert cubin[:4] == b"\x7fELF" and int.from_bytes(cubin[18:20], "little") == 190  # EM_CUDA
    assert f".target {variant}" in ptx
    launch = json.loads(files[f"{variant}/launch.json"])["kernels"]
    assert sorted(launch) == sorted(k.name for k in KERNELS)
    for spec in KERNELS:
        entry = re.search(rf"\.visible \.entry {spec.name}\((.*?)\)", ptx, re.S)
        assert entry, spec.name
        params = re.findall(r"\.param \.(\w+)", entry.group(1))
        desc = launch[spec.name]
        assert len(params) == len(desc["parameters"]) == len(spec.args)
        for ptx_type, p in zip(params, desc["parameters"], strict=True):
            assert {"ptr": "u64", "i64": "u64", "f32": "f32"}[p["type"]] == ptx_type, (spec.name, p)
            assert p["offset"] % p["size"] == 0
        assert desc["block"][0] in (64, 128, 256)
        assert cubin.count(spec.name.encode()) >= 1


def test_deterministic() -> None:
    target = get_target("cuda")
    assert target.emit(KERNELS, "sm_90") == target.emit(list(reversed(KERNELS)), "sm_90")


def test_ptxas_errors_are_reported() -> None:
    target = get_target("cuda")
    files = target.emit(compute_kernels("c", None, {}), "sm_80")
    missing = dict(files)
    missing["sm_80/launch.json"] = files["sm_80/launch.json"].replace(b'"hetc_c_add"', b'"hetc_c_sub"', 1)
    with pytest.raises(CodegenError, match="missing"):
        target.verify(missing, "sm_80")
    system_tool("ptxas")
    broken = dict(files)
    broken["sm_80/hetc_kernels.ptx"] = files["sm_80/hetc_kernels.ptx"].replace(b"ret;", b"ret_bogus;", 1)
    with pytest.raises(CodegenError, match="ptxas -arch=sm_80 rejected"):
        target.verify(broken, "sm_80", require_tool=True)
