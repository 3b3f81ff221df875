"""The interface every code-generation target implements (cpu, cuda, gaudi)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .kernels import KernelSpec


class CodegenError(RuntimeError):
    """Generated code was rejected by the tool that consumes it (LLVM verifier, ptxas, a C compiler).

    This is a compiler bug, not a user error: the message carries the tool's own output."""


class ToolMissingError(CodegenError):
    """verify(require_tool=True) could not find the consumer tool (ptxas, clang)."""


class Target(ABC):
    """A code-generation target.

    name:     "cpu" | "cuda" | "gaudi" (also the bundle sub-folder)
    variants: what `variant` may be (sub-architectures); the first is the default
    """

    name: str
    variants: tuple[str, ...]

    @abstractmethod
    def emit(self, kernels: list[KernelSpec], variant: str) -> dict[str, bytes]:
        """Relative file path inside the target folder -> content. Byte-identical for the same input."""

    @abstractmethod
    def verify(self, files: dict[str, bytes], variant: str, *, require_tool: bool = False) -> None:
        """Run the real consumer of the files; raise CodegenError when it rejects them. When the external
        tool is missing: ToolMissingError if require_tool, else only the in-process checks run."""

    def check_variant(self, variant: str) -> str:
        if variant not in self.variants:
            from hetc.errors import HetcError, Loc

            raise HetcError(f"target {self.name}: unknown variant {variant!r}; expected one of "
                            f"{', '.join(self.variants)}", Loc(f"target {self.name}"))
        return variant
