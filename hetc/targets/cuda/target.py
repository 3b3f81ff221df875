"""cuda target: the shared LLVM IR kernels (hetc/targets/llvm_ir.py) through LLVM's NVPTX backend (llvmlite) -> PTX,
assembled by ptxas into a cubin when ptxas is available, plus a launch descriptor per kernel.

Files per variant (one folder per SM version, so several variants can share one bundle folder):
    sm_90/hetc_kernels.ptx       PTX for every kernel (`.visible .entry <name>`)
    sm_90/hetc_kernels.cubin     only when ptxas was found at emit time (see `find_ptxas`)
    sm_90/launch.json            per kernel: block, grid formula, parameter layout (offsets in the param space)

GPU mapping (shared IR, `IRGen(gpu=True)`): every kernel runs a grid-stride loop over its independent work
items, one thread per item: elements (elementwise), rows (rmsnorm, sampling), sequences (pooling),
queries (vector search), KV blocks x heads (KV pack/unpack). Per-thread buffers (top-k) live in local memory.
This is correct on any grid size; it is not a tuned GPU kernel for the row-serial kinds (see docs/codegen.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..base import CodegenError, Target, ToolMissingError
from ..kernels import (
    ELEMENTWISE,
    EMBED_POOL,
    KV_DEQUANTIZE,
    KV_QUANTIZE,
    RMSNORM,
    SAMPLE,
    VECTOR_SEARCH,
    KernelSpec,
    unique_kernels,
)

TRIPLE = "nvptx64-nvidia-cuda"
SM_VERSIONS = ("sm_80", "sm_90", "sm_100")  # A100; H100/H200; B200 (NVIDIA CUDA C Programming Guide, table
#                                              "Compute capabilities")
OPT_LEVEL = 3
MODULE_NAME = "hetc_kernels"
PTXAS_ENV = "HETC_PTXAS"

# (work-item expression over the kernel's arguments, threads per block)
_WORK = {
    ELEMENTWISE: ("n", 256),
    RMSNORM: ("rows", 64),
    SAMPLE: ("rows", 64),
    EMBED_POOL: ("batch", 64),
    VECTOR_SEARCH: ("n_queries", 64),
    KV_QUANTIZE: ("2 * n_layers * ceil_div(n_tokens, block_tokens) * n_kv_heads", 128),
    KV_DEQUANTIZE: ("2 * n_layers * ceil_div(n_tokens, block_tokens) * n_kv_heads", 128),
}
_PARAM_SIZE = {"f32": 4, "i64": 8}


def find_ptxas() -> str | None:
    """ptxas from $HETC_PTXAS, else the nvidia-cuda-nvcc wheel (cu13, then cu12), else PATH."""
    explicit = os.environ.get(PTXAS_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    try:
        import nvidia  # namespace package of the nvidia-* wheels

        for root in list(nvidia.__path__):
            for cu in ("cu13", "cu12", "cuda_nvcc"):
                candidate = Path(root) / cu / "bin" / "ptxas"
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return str(candidate)
    except ImportError:
        pass
    return shutil.which("ptxas")


def ptx_for(kernels: list[KernelSpec], variant: str) -> str:
    import llvmlite.binding as llvm_b

    from ..llvm_ir import build_module

    llvm_b.initialize_all_targets()
    llvm_b.initialize_all_asmprinters()
    tm = llvm_b.Target.from_triple(TRIPLE).create_target_machine(cpu=variant, features="", opt=OPT_LEVEL)
    module = build_module(kernels, triple=TRIPLE, data_layout=str(tm.target_data), gpu=True, name=MODULE_NAME)
    mod = llvm_b.parse_assembly(str(module))
    mod.verify()
    pto = llvm_b.create_pipeline_tuning_options(speed_level=OPT_LEVEL)
    pb = llvm_b.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    mod.verify()
    return tm.emit_assembly(mod)


def launch_descriptor(spec: KernelSpec) -> dict:
    work, block = _WORK[spec.kind]
    offset, layout = 0, []
    for arg in spec.args:
        size = 8 if arg.is_pointer else _PARAM_SIZE[arg.elem]
        offset = -(-offset // size) * size  # natural alignment in the .param space
        layout.append({"name": arg.name, "type": "ptr" if arg.is_pointer else arg.elem,
                       "elem": arg.elem, "const": arg.is_const, "offset": offset, "size": size, "doc": arg.doc})
        offset += size
    return {
        "kernel": spec.name,
        "kind": spec.kind,
        "params": dict(spec.params),
        "block": [block, 1, 1],
        "grid": {"x": f"ceil_div({work}, {block})", "y": 1, "z": 1,
                 "note": "grid-stride loop: any grid size is correct; this one gives one thread per item"},
        "work_items": work,
        "shared_bytes": 0,
        "parameters": layout,
        "param_bytes": offset,
    }


def _run_ptxas(ptxas: str, ptx: str, variant: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="hetc-ptxas-") as tmp:
        src, out = Path(tmp) / f"{MODULE_NAME}.ptx", Path(tmp) / f"{MODULE_NAME}.cubin"
        src.write_text(ptx)
        proc = subprocess.run([ptxas, f"-arch={variant}", "-O3", str(src), "-o", str(out)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CodegenError(f"cuda: ptxas -arch={variant} rejected {MODULE_NAME}.ptx:\n"
                               f"{proc.stderr.strip() or proc.stdout.strip()}")
        return out.read_bytes()


class CudaTarget(Target):
    name = "cuda"
    variants = SM_VERSIONS

    def emit(self, kernels: list[KernelSpec], variant: str = "sm_90") -> dict[str, bytes]:
        self.check_variant(variant)
        kernels = unique_kernels(kernels)
        if not kernels:
            return {}
        ptx = ptx_for(kernels, variant)
        launch = {spec.name: launch_descriptor(spec) for spec in kernels}
        files = {
            f"{variant}/{MODULE_NAME}.ptx": ptx.encode(),
            f"{variant}/launch.json": (json.dumps({"module": f"{MODULE_NAME}.ptx", "arch": variant,
                                                   "kernels": launch}, indent=2, sort_keys=True) + "\n").encode(),
        }
        ptxas = find_ptxas()
        if ptxas:
            files[f"{variant}/{MODULE_NAME}.cubin"] = _run_ptxas(ptxas, ptx, variant)
        return files

    def verify(self, files: dict[str, bytes], variant: str = "sm_90", *, require_tool: bool = False) -> None:
        """Every kernel of launch.json is a `.visible .entry` of the PTX for this SM version, and ptxas
        assembles the PTX for it (when ptxas is available)."""
        self.check_variant(variant)
        if not files:
            return
        ptx = files[f"{variant}/{MODULE_NAME}.ptx"].decode()
        launch = json.loads(files[f"{variant}/launch.json"])
        if f".target {variant}" not in ptx:
            raise CodegenError(f"cuda: {MODULE_NAME}.ptx does not target {variant}")
        missing = sorted(k for k in launch["kernels"] if f".visible .entry {k}(" not in ptx)
        if missing:
            raise CodegenError(f"cuda: kernels missing from {MODULE_NAME}.ptx: {missing}")
        ptxas = find_ptxas()
        if ptxas is None:
            if require_tool:
                raise ToolMissingError(
                    f"cuda: ptxas not found (set ${PTXAS_ENV}, `{sys.executable} -m pip install "
                    "nvidia-cuda-nvcc`, or put ptxas on PATH)")
            return
        _run_ptxas(ptxas, ptx, variant)
