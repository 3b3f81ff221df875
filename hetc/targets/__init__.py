"""hetc.targets: code generation for cpu (LLVM), cuda (PTX) and gaudi (TPC-C) behind one interface.

    from hetc.targets import get_target
    files = get_target("cuda").emit(kernels, "sm_90")   # {relative path: bytes}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Target

TARGET_NAMES = ("cpu", "cuda", "gaudi")


def get_target(name: str) -> Target:
    """The target called `name` (imports its heavy dependencies lazily)."""
    if name == "cpu":
        from .cpu.target import CpuTarget

        return CpuTarget()
    if name == "cuda":
        from .cuda.target import CudaTarget

        return CudaTarget()
    if name == "gaudi":
        from .gaudi.target import GaudiTarget

        return GaudiTarget()
    from hetc.errors import HetcError, Loc

    raise HetcError(f"unknown target {name!r}; expected one of {', '.join(TARGET_NAMES)}", Loc("targets"))
