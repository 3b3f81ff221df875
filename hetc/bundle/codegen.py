"""Code generation for a placed module: the kernels of every placed op, per target and variant.

Each placed task op names the kernels it needs through its KernelProvider interface (built by
hetc.targets.kernels, specialised to its model's shapes); kernels are grouped by the target of the op's
device class (cpu, cuda/sm_XX, gaudi/gaudiN), emitted once per group, and checked by the tool that consumes
them. Devices without a code generator (AMD GPUs: ROCm) get no kernels; their stages run on the serving
engine alone.

A kernel is emitted only when something runs it (issue 14: a kernel no stage calls is not emitted): each
op's KernelProvider (hetc/dialects/interfaces.py) names, per target, the kernel kinds hetc's runtime calls
(hetc/runtime/kernels.py). Today that is retrieval and embedding on a CPU stage. The LLM kernels (sampling,
rmsnorm, elementwise, KV pack/unpack) and every PTX / TPC-C kernel have generators and tests (hetc/targets/) but
no caller: vLLM, SGLang and TensorRT-LLM run their own; docs/codegen.md says which kernel runs where.
"""

from __future__ import annotations

from xdsl.traits import SymbolTable

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.dialects.interfaces import RUNTIME, KernelProvider, Served
from hetc.spec.frontend import arch_from_attr

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


def generate(module, db, verify: bool = True) -> tuple[dict[str, bytes], dict[str, dict[str, list[str]]]]:
    """Returns (bundle files, op sym name -> {"files": the bundle files holding its kernels, "symbols": the
    kernels it calls}). Ops whose kernels nothing runs get none."""
    from hetc.targets import get_target

    groups: dict[tuple[str, str], list] = {}
    users: dict[tuple[str, str], dict[str, list[str]]] = {}
    for op in module.walk():
        provider = op.get_trait(KernelProvider) if isinstance(op, T.TaskOp) else None
        if provider is None or op.placement() is None:
            continue
        device = db.devices[op.placement().device.data]
        served = op.get_trait(Served)
        if served is not None and served.engine_of(op, device) != RUNTIME:
            continue  # an engine serves it (one its spec pins, say): hetc's runtime calls no kernel of it
        tv = target_variant(device)
        called = provider.called_at_run_time(tv[0]) if tv is not None else ()
        if not called:
            continue
        arch = None
        if "model" in op.properties:
            model = SymbolTable.lookup_symbol(op, op.model)
            arch = arch_from_attr(model.arch, model.sym_name.data) if isinstance(model, A.ModelOp) else None
        specs = [spec for spec in provider.kernels(op, arch) if spec.kind in called]
        if specs:
            groups.setdefault(tv, []).extend(specs)
            users.setdefault(tv, {})[op.sym_name.data] = sorted({spec.name for spec in specs})
    files: dict[str, bytes] = {}
    kernels: dict[str, dict[str, list[str]]] = {}
    for (target_name, variant), specs in sorted(groups.items()):
        target = get_target(target_name)
        emitted = target.emit(specs, variant)
        if verify:
            target.verify(emitted, variant)
        # cuda and gaudi already put each variant in its own folder; cpu emits one host variant
        paths = [f"{target_name}/{name}" if name.startswith(f"{variant}/") else f"{target_name}/{variant}/{name}"
                 for name in sorted(emitted)]
        files.update(zip(paths, (emitted[n] for n in sorted(emitted)), strict=True))
        for op_name, symbols in users[(target_name, variant)].items():
            kernels[op_name] = {"files": paths, "symbols": symbols}
    return files, kernels
