"""`partition`: make the placement's communication explicit in the IR.

- After every prefill or decode placed with tensor parallelism (tp > 1) a `task.allreduce` stands for
  the two all-reduces per layer its devices run per forward pass (bytes = activations of one layer for
  the batch x 2 x layers; for decode, per token step).
- On every data edge between ops placed on different device classes a `task.transfer` carries the
  payload over the network (`roce` between accelerators, `ethernet` when a CPU is involved). KV caches
  already move in `task.kv_transfer`, which gets its transport set the same way.

Idempotent by construction: a phase whose result already feeds its all-reduce, and an edge whose value
already comes through a transfer, are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.dialects.interfaces import PREFILL, Costed
from hetc.errors import HetcError
from hetc.flow import moves_kv, payload_bytes, placeable, producers
from hetc.locations import op_loc
from hetc.passes.common import i64, task

ACTIVATION_BYTES = 2  # 16-bit activations (hetc.model.costmodel.ACTIVATION_BYTES)


def _device_of(op: Operation) -> str | None:
    place = op.attributes.get("placement")
    return place.device.data if isinstance(place, T.DeviceAttr) else None


def _device_kind(op: Operation) -> str:
    """The kind of the device class an op is placed on, which place writes into the placement (hand-written
    IR may leave it out)."""
    kind = op.attributes["placement"].kind.data
    if not kind:
        raise HetcError(f"partition: {op.name} @{op.sym_name.data} has a placement without the device kind "
                        '(gpu, accelerator, cpu): run place first, or write kind = "..." after the device class '
                        'in its #task.device<...>', op_loc(op))
    return kind


def transport(src: Operation, dst: Operation) -> str:
    """How data moves between two placed ops: in process on one class, else over the network."""
    if _device_of(src) == _device_of(dst):
        return "in-process"
    kinds = {_device_kind(o) for o in (src, dst)}
    return "ethernet" if "cpu" in kinds else "roce"


def _insert_allreduce(op: T.TaskOp) -> None:
    place = op.placement()
    if place is None or place.tp.data <= 1 or any(isinstance(u.operation, T.AllReduceOp) for u in op.result.uses):
        return  # not tensor-parallel, or its all-reduce is in place (partition ran before)
    model = SymbolTable.lookup_symbol(op, op.model)
    arch = model.arch.model_arch(model.sym_name.data)
    tokens = op.input_tokens.value.data if op.get_trait(Costed).role == PREFILL else 1
    layer_bytes = tokens * arch.d_model * ACTIVATION_BYTES * place.batch.data
    size = 2 * arch.n_layers * layer_bytes
    uses = list(op.result.uses)
    reduce = task(T.AllReduceOp, op, "allreduce", [op.result], op.result.type, tp=i64(place.tp.data),
                  bytes=i64(size))
    reduce.attributes["placement"] = place
    Rewriter.insert_op(reduce, InsertPoint.after(op))
    for use in uses:
        use.operation.operands[use.index] = reduce.result


def _stops_at_transfers(op: Operation) -> bool:
    return placeable(op) or isinstance(op, T.TransferOp)


def _placed_producer(value: SSAValue) -> Operation | None:
    """The placed op (or transfer) a value comes from (through branches and loop structure), if exactly one."""
    found = {src for src, _, _, back, _ in producers(value, stop=_stops_at_transfers)
             if not back and _device_of(src) is not None}
    return found.pop() if len(found) == 1 else None


def _insert_transfers(graph: A.GraphOp) -> None:
    for op in list(graph.walk()):
        if not placeable(op) and not moves_kv(op):
            continue
        dst = _device_of(op)
        if dst is None:
            continue
        if moves_kv(op):
            src = _placed_producer(op.inputs[0])
            if src is not None:
                op.attributes["transport"] = StringAttr(transport(src, op))
            continue
        for index, value in enumerate(op.operands):
            if isinstance(value.type, A.KVType):
                continue  # KV caches move in their own task.kv_transfer
            src = _placed_producer(value)
            if src is None or _device_of(src) == dst or isinstance(src, T.TransferOp):
                continue  # same class, or the transfer is in place (partition ran before)
            move = task(T.TransferOp, op, f"in{index}", [value], value.type,
                        bytes=i64(int(payload_bytes(value))), transport=StringAttr(transport(src, op)))
            move.attributes["placement"] = op.placement().with_shape()
            Rewriter.insert_op(move, InsertPoint.before(op))
            op.operands[index] = move.results[0]


@dataclass(frozen=True)
class PartitionPass(ModulePass):
    name = "partition"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for graph in [g for g in op.body.block.ops if isinstance(g, A.GraphOp)]:
            for task_op in list(graph.walk()):
                if placeable(task_op) and task_op.get_trait(Costed).role:  # an LLM phase may run tensor-parallel
                    _insert_allreduce(task_op)
            _insert_transfers(graph)
