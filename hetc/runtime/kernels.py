"""The bundle's generated CPU kernels, loaded from its object code (cpu/x86-64/hetc_kernels.o) and called.

llvmlite's MCJIT links the relocatable object the compiler wrote (the same bytes `hetc compile` verified);
ctypes calls the kernels through the C ABI the bundle's hetc_kernels.h declares. A stage's plan entry names
the symbols it calls (`kernel_symbols`); the header gives each one's kind and parameters (each prototype follows
a comment naming them). VectorSearch serves retrieval stages, EmbedPool embed stages (docs/codegen.md).
"""

from __future__ import annotations

import ctypes
import re
import threading
from pathlib import Path

import numpy as np

from hetc.errors import HetcError, Loc

CPU_DIR = "cpu/x86-64"
HEADER = f"{CPU_DIR}/hetc_kernels.h"
OBJECT = f"{CPU_DIR}/hetc_kernels.o"
_KERNEL = re.compile(r"/\* (\w+): ([^*]*) \*/\n(?:/\*[^\n]*\*/\n)*void (\w+)\(")
_lock = threading.Lock()
_engines: dict[str, object] = {}  # object path -> MCJIT engine (kept alive while its code is called)


def header_kernels(bundle: Path) -> list[tuple[str, dict[str, str], str]]:
    """(kind, parameters, symbol) of every kernel the bundle's CPU header declares."""
    path = bundle / HEADER
    if not path.is_file():
        return []
    found = []
    for kind, params, name in _KERNEL.findall(path.read_text(encoding="utf-8")):
        values = dict(pair.split("=", 1) for pair in params.split(", ") if "=" in pair)
        found.append((kind, values, name))
    return found


def _address(bundle: Path, symbol: str) -> int:
    import llvmlite.binding as llvm

    from hetc.targets.cpu.target import CPU_LEVELS, target_machine

    obj_path = str((bundle / OBJECT).resolve())
    with _lock:
        engine = _engines.get(obj_path)
        if engine is None:
            machine = target_machine("x86-64", jit=True)
            engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
            engine.add_object_file(llvm.ObjectFileRef.from_data(Path(obj_path).read_bytes()))
            engine.finalize_object()
            _engines[obj_path] = engine
        address = engine.get_function_address(symbol)
    if not address:
        raise HetcError(f"kernel {symbol} is not in the bundle's object code ({CPU_LEVELS['x86-64']})", Loc(obj_path))
    return address


def _find(bundle: Path, kind: str, symbols: list[str] | None, what: str, **required: int | None) -> tuple[dict, str]:
    """(parameters, symbol) of the bundle's CPU kernel of `kind` with the `required` integer parameters, among
    `symbols` (the stage's plan entry) when given."""
    for found_kind, params, name in header_kernels(bundle):
        if found_kind != kind or (symbols is not None and name not in symbols):
            continue
        if all(value is None or int(params.get(key, 0)) == value for key, value in required.items()):
            return params, name
    raise HetcError(f"the bundle has no CPU {what} kernel for {required['dim']}-element vectors"
                    + (f" among the stage's kernels ({', '.join(symbols) or 'none'})" if symbols is not None else "")
                    + "; compile the spec with the node's dim equal to the vectors' and place the stage on a CPU",
                    Loc(str(bundle / HEADER)))


_F32P, _I32P = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)


class VectorSearch:
    """The bundle's cosine/dot top-k kernel for one index: rows of `matrix` ranked for each query."""

    def __init__(self, bundle: Path, matrix: np.ndarray, top_k: int | None = None, symbols: list[str] | None = None):
        params, self.symbol = _find(bundle, "vector_search_topk", symbols, "vector-search",
                                    dim=matrix.shape[1], top_k=top_k)
        self.top_k, self.metric = int(params["top_k"]), params["metric"]
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        prototype = ctypes.CFUNCTYPE(None, _F32P, ctypes.c_int64, _F32P, ctypes.c_int64, _I32P, _F32P)
        self._fn = prototype(_address(bundle, self.symbol))

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices [n, top_k] best first, -1 when missing; scores [n, top_k])."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.matrix.shape[1]:
            raise ValueError(f"query has {queries.shape[1]} elements, the index {self.matrix.shape[1]}")
        n = queries.shape[0]
        out_index = np.empty((n, self.top_k), np.int32)
        out_score = np.empty((n, self.top_k), np.float32)
        self._fn(self.matrix.ctypes.data_as(_F32P), self.matrix.shape[0], queries.ctypes.data_as(_F32P), n,
                 out_index.ctypes.data_as(_I32P), out_score.ctypes.data_as(_F32P))
        return out_index, out_score


class EmbedPool:
    """The bundle's pooling kernel of an embed stage: masked mean over each sequence's token vectors, then
    L2 normalisation (x / max(|x|, 1e-12)), for `dim`-element token vectors."""

    def __init__(self, bundle: Path, dim: int | None = None, symbols: list[str] | None = None):
        params, self.symbol = _find(bundle, "embed_pool_l2norm", symbols, "pooling", dim=dim)
        self.dim = int(params["dim"])
        prototype = ctypes.CFUNCTYPE(None, _F32P, _I32P, ctypes.c_int64, ctypes.c_int64, _F32P)
        self._fn = prototype(_address(bundle, self.symbol))

    def pool(self, hidden: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """hidden [batch, seq, dim] (or [seq, dim]: one sequence), mask [batch, seq] non-zero where a token
        counts (default: all) -> [batch, dim] (or [dim]) L2-normalised mean vectors."""
        single = np.ndim(hidden) == 2
        hidden = np.ascontiguousarray(hidden[None] if single else hidden, dtype=np.float32)
        if hidden.ndim != 3 or hidden.shape[2] != self.dim:
            raise ValueError(f"token vectors of shape {hidden.shape}; the kernel takes [batch, seq, {self.dim}]")
        batch, seq = hidden.shape[:2]
        mask = np.ones((batch, seq), np.int32) if mask is None else np.ascontiguousarray(
            np.reshape(mask, (batch, seq)), dtype=np.int32)
        out = np.empty((batch, self.dim), np.float32)
        self._fn(hidden.ctypes.data_as(_F32P), mask.ctypes.data_as(_I32P), batch, seq, out.ctypes.data_as(_F32P))
        return out[0] if single else out
