"""Code generation for a placed module: the kernels of every placed op, per target and variant.

Each placed task op asks hetc.targets.kernels for the kernels it needs (specialised to its model's
shapes); kernels are grouped by the target of the op's device class (cpu, cuda/sm_XX, gaudi/gaudiN),
emitted once per group, and checked by the tool that consumes them. Devices without a code generator
(AMD GPUs: ROCm) get no kernels; their stages run on the serving engine alone.
"""

from __future__ import annotations

from xdsl.traits import SymbolTable

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.frontend import arch_from_attr

CPU_VARIANT = "x86-64"
CUDA_VARIANT_FOR = {"sm_86": "sm_80", "sm_87": "sm_80", "sm_89": "sm_80"}


def target_variant(device) -> tuple[str, str] | None:
    """(target, variant) for a device class, or None when hetc has no code generator for it."""
    if device.target == "cpu":
        return "cpu", CPU_VARIANT
    if device.target == "cuda" and device.sm:
        # Ampere/Ada parts (sm_86, sm_89) run sm_80 cubins and PTX: binary compatible within a major version
        return "cuda", CUDA_VARIANT_FOR.get(device.sm, device.sm)
    if device.target == "gaudi" and device.gaudi_generation:
        return "gaudi", device.gaudi_generation
    return None


def _op_attrs(op: T.TaskOp) -> dict:
    if isinstance(op, T.VectorSearchOp):
        return {"dim": op.dim.value.data, "top_k": op.top_k.value.data}
    if isinstance(op, T.KVTransferOp):
        precision = SymbolTable.lookup_symbol(op, op.model).kv_precision.data
        return {"kv_dtype": "int8" if precision == "int8" else "fp8_e4m3"}
    return {}


def _kernel_owner(op: T.TaskOp) -> str:
    """Kernels are specialised to shapes, not to ops: ops of one model (or one kind, for model-free ops)
    share them, so a graph with a thousand tool calls emits one set of elementwise kernels."""
    if "model" in op.properties:
        return op.model.root_reference.data
    if isinstance(op, T.VectorSearchOp):
        return f"search_d{op.dim.value.data}_k{op.top_k.value.data}"
    return op.KIND


def generate(module, db, verify: bool = True) -> tuple[dict[str, bytes], dict[str, list[str]]]:
    """Returns (bundle files, op sym name -> the bundle files holding its kernels)."""
    from hetc.targets import get_target
    from hetc.targets.kernels import kernels_for_op

    groups: dict[tuple[str, str], list] = {}
    users: dict[tuple[str, str], list[str]] = {}
    for op in module.walk():
        if not isinstance(op, T.TaskOp) or op.placement() is None:
            continue
        tv = target_variant(db.devices[op.placement().device.data])
        if tv is None:
            continue
        arch = None
        if "model" in op.properties:
            model = SymbolTable.lookup_symbol(op, op.model)
            arch = arch_from_attr(model.arch, model.sym_name.data) if isinstance(model, A.ModelOp) else None
        specs = kernels_for_op(op.KIND, _kernel_owner(op), arch, _op_attrs(op))
        if specs:
            groups.setdefault(tv, []).extend(specs)
            users.setdefault(tv, []).append(op.sym_name.data)
    files: dict[str, bytes] = {}
    kernels: dict[str, list[str]] = {}
    for (target_name, variant), specs in sorted(groups.items()):
        target = get_target(target_name)
        emitted = target.emit(specs, variant)
        if verify:
            target.verify(emitted, variant)
        # cuda and gaudi already put each variant in its own folder; cpu emits one host variant
        paths = [f"{target_name}/{name}" if name.startswith(f"{variant}/") else f"{target_name}/{variant}/{name}"
                 for name in sorted(emitted)]
        files.update(zip(paths, (emitted[n] for n in sorted(emitted)), strict=True))
        for op_name in users[(target_name, variant)]:
            kernels[op_name] = paths
    return files, kernels
