"""Names from the user's spec never reach generated code unsanitised, on any target."""

from __future__ import annotations

import pytest
from conftest import system_tool

from hetc.errors import HetcError
from hetc.model.models import PRESETS
from hetc.targets import get_target
from hetc.targets import kernels as K
from hetc.targets.kernels import KernelSpec, decode_kernels, vector_search_kernels
from hetc.targets.naming import c_identifier, is_c_identifier

HOSTILE = [
    'x"; system("rm -rf /")',
    "модель-ü 🚀 */ #include <stdio.h>",
    "a\nb\\c$(whoami)`id`",
    "1-starts-with-digit",
    "main",
    "",
]
ARCH = PRESETS["llama-3-8b"].with_overrides(vocab_size=1000, d_model=128, n_layers=1, n_kv_heads=1, n_heads=1)
VARIANTS = {"cpu": "x86-64", "cuda": "sm_90", "gaudi": "gaudi3"}


def _kernels(name: str) -> list[KernelSpec]:
    ks = []
    for build in (K.decode_kernels, K.prefill_kernels, K.kv_transfer_kernels, K.embed_kernels, K.compute_kernels):
        ks += build(name, ARCH, {})
    return ks + vector_search_kernels(name, None, {"dim": 64})


@pytest.mark.parametrize("name", HOSTILE)
def test_c_identifier(name: str) -> None:
    ident = c_identifier(name)
    assert is_c_identifier(ident)
    assert c_identifier(name) == ident  # stable
    assert ident.isascii()


def test_identifiers_are_collision_resistant() -> None:
    names = ["a-b", "a.b", "a b", "a_b", "a__b", "a/b"]
    assert len({c_identifier(n) for n in names}) == len(names)
    assert c_identifier("decode_1") == "decode_1"  # safe names stay readable


def test_unsanitised_kernel_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="not sanitised"):
        KernelSpec("elementwise", 'x"; system("rm -rf /")', (("op", "add"),))


def test_bad_attrs_are_user_errors() -> None:
    with pytest.raises(HetcError, match="dim"):
        vector_search_kernels("vs", None, {})
    with pytest.raises(HetcError, match="metric"):
        vector_search_kernels("vs", None, {"dim": 8, "metric": "l7"})
    with pytest.raises(HetcError, match="model architecture"):
        decode_kernels("d", None, {})


@pytest.mark.parametrize("target_name", sorted(VARIANTS))
def test_hostile_names_never_reach_generated_code(target_name: str) -> None:
    kernels = []
    for name in HOSTILE[:3]:
        kernels += _kernels(name)
    if target_name in ("gaudi", "cuda"):
        system_tool({"gaudi": "clang", "cuda": "ptxas"}[target_name])
    target = get_target(target_name)
    files = target.emit(kernels, VARIANTS[target_name])
    target.verify(files, VARIANTS[target_name], require_tool=True)
    for path, data in files.items():
        assert path.isascii() and all(part and part not in (".", "..") for part in path.split("/"))
        binary = path.endswith((".o", ".cubin"))
        if not binary:
            assert data.isascii(), path  # no unicode from the names survives in any text file
        text = data.decode("latin-1")
        fragments = ("system(", "rm -rf", "#include <stdio.h>", 'x"; ', "$(whoami", "`id`")
        for fragment in fragments + (() if binary else ("`", "$(")):
            assert fragment not in text, (path, fragment)
        for fragment in ("модель", "ü", "🚀"):
            assert fragment.encode() not in data, (path, fragment)
    for spec in kernels:
        assert spec.name.isascii() and spec.name.replace("_", "").isalnum()
