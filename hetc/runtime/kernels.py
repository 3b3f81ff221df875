"""The bundle's generated CPU kernels, loaded from its object code (cpu/x86-64/hetc_kernels.o) and called.

llvmlite's MCJIT links the relocatable object the compiler wrote (the same bytes `hetc compile` verified);
ctypes calls the kernels through the C ABI the bundle's hetc_kernels.h declares. Which kernel serves a
stage is found in that header: each prototype follows a comment naming its kind and parameters.
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


class VectorSearch:
    """The bundle's cosine/dot top-k kernel for one index: rows of `matrix` ranked for each query."""

    def __init__(self, bundle: Path, matrix: np.ndarray, top_k: int | None = None):
        dim = matrix.shape[1]
        matches = [(params, name) for kind, params, name in header_kernels(bundle)
                   if kind == "vector_search_topk" and int(params.get("dim", 0)) == dim
                   and (top_k is None or int(params.get("top_k", 0)) == top_k)]
        if not matches:
            raise HetcError(f"the bundle has no CPU vector-search kernel for {dim}-element vectors; compile the "
                            "spec with the retrieval node's dim equal to the index's", Loc(str(bundle / HEADER)))
        params, self.symbol = matches[0]
        self.top_k, self.metric = int(params["top_k"]), params["metric"]
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        f32p, i32p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)
        prototype = ctypes.CFUNCTYPE(None, f32p, ctypes.c_int64, f32p, ctypes.c_int64, i32p, f32p)
        self._fn = prototype(_address(bundle, self.symbol))

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices [n, top_k] best first, -1 when missing; scores [n, top_k])."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.matrix.shape[1]:
            raise ValueError(f"query has {queries.shape[1]} elements, the index {self.matrix.shape[1]}")
        n = queries.shape[0]
        out_index = np.empty((n, self.top_k), np.int32)
        out_score = np.empty((n, self.top_k), np.float32)
        f32p, i32p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)
        self._fn(self.matrix.ctypes.data_as(f32p), self.matrix.shape[0], queries.ctypes.data_as(f32p), n,
                 out_index.ctypes.data_as(i32p), out_score.ctypes.data_as(f32p))
        return out_index, out_score
