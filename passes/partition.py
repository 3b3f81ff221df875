"""`partition`: make the placement's communication explicit in the IR.

- After every prefill or decode placed with tensor parallelism (tp > 1) a `task.allreduce` stands for
  the two all-reduces per layer its devices run per forward pass (bytes = activations of one layer for
  the batch x 2 x layers; for decode, per token step).
- On every data edge between ops placed on different device classes a `task.transfer` carries the
  payload over the network (`roce` between accelerators, `ethernet` when a CPU is involved). KV caches
  already move in `task.kv_transfer`, which gets its transport set the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.passes.common import i64, task
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable

from hetc.errors import HetcError
from hetc.flow import payload_bytes, placeable, producers
from hetc.locations import op_loc

ACTIVATION_BYTES = 2  # 16-bit activations (hetc.costmodel.ACTIVATION_BYTES)


def _device_of(op: Operation) -> str | None:
    place = op.attributes.get("placement")
    return place.device.data if isinstance(place, T.DeviceAttr) else None


def _device_kind(op: Operation) -> StringAttr:
    """The device kind `place` writes beside a placement (hand-written IR may give a placement alone)."""
    kind = op.attributes.get("device_kind")
    if not isinstance(kind, StringAttr):
        raise HetcError(f"partition: {op.name} @{op.sym_name.data} has a placement but no device_kind "
                        '(cpu, gpu, ...): run place first, or write device_kind = "..." beside the placement',
                        op_loc(op))
    return kind


def transport(src: Operation, dst: Operation) -> str:
    """How data moves between two placed ops: in process on one class, else over the network."""
    if _device_of(src) == _device_of(dst):
        return "in-process"
    kinds = {_device_kind(o).data for o in (src, dst)}
    return "ethernet" if "cpu" in kinds else "roce"


def _insert_allreduce(op: T.TaskOp) -> None:
    place = op.placement()
    if place is None or place.tp.data <= 1 or "hetc.allreduce" in op.attributes:
        return
    model = SymbolTable.lookup_symbol(op, op.model)
    arch = model.arch.data
    tokens = op.input_tokens.value.data if isinstance(op, T.PrefillOp) else 1
    layer_bytes = tokens * arch["d_model"].value.data * ACTIVATION_BYTES * place.batch.data
    size = 2 * arch["n_layers"].value.data * layer_bytes
    uses = list(op.result.uses)
    reduce = task(T.AllReduceOp, op, "allreduce", [op.result], op.result.type, tp=i64(place.tp.data),
                  bytes=i64(size))
    reduce.attributes["placement"] = place
    reduce.attributes["device_kind"] = _device_kind(op)
    Rewriter.insert_op(reduce, InsertPoint.after(op))
    for use in uses:
        use.operation.operands[use.index] = reduce.result
    op.attributes["hetc.allreduce"] = StringAttr(reduce.sym_name.data)


def _placed_producer(value: SSAValue) -> Operation | None:
    """The placed op a value comes from (through branches and loop structure), if exactly one."""
    found = {src for src, _, _, back, _ in producers(value) if not back and _device_of(src) is not None}
    return found.pop() if len(found) == 1 else None


def _insert_transfers(graph: A.GraphOp) -> None:
    for op in list(graph.walk()):
        if not placeable(op) and not isinstance(op, T.KVTransferOp):
            continue
        dst = _device_of(op)
        if dst is None:
            continue
        if isinstance(op, T.KVTransferOp):
            src = _placed_producer(op.inputs[0])
            if src is not None:
                op.attributes["transport"] = StringAttr(transport(src, op))
            continue
        for index, value in enumerate(op.operands):
            if isinstance(value.type, A.KVType):
                continue  # KV caches move in their own task.kv_transfer
            src = _placed_producer(value)
            if src is None or _device_of(src) == dst or isinstance(src, T.TransferOp):
                continue
            move = task(T.TransferOp, op, f"in{index}", [value], value.type,
                        bytes=i64(int(payload_bytes(value))), transport=StringAttr(transport(src, op)))
            move.attributes["placement"] = T.DeviceAttr(dst)
            move.attributes["device_kind"] = _device_kind(op)
            Rewriter.insert_op(move, InsertPoint.before(op))
            op.operands[index] = move.results[0]


@dataclass(frozen=True)
class PartitionPass(ModulePass):
    name = "partition"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for graph in [g for g in op.body.block.ops if isinstance(g, A.GraphOp)]:
            for task_op in list(graph.walk()):
                if isinstance(task_op, (T.PrefillOp, T.DecodeOp)):
                    _insert_allreduce(task_op)
            _insert_transfers(graph)
