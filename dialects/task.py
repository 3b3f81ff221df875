"""The `task` dialect: granular operators after decomposition, and their placement.

Every op is one schedulable task of paper-method.md section 1 (prefill, decode, KV transfer, MoE
gate/experts/merge, all-reduce, tool lookup/compute, embed, vector search, ...). `node` keeps the id of
the spec node it came from. After the `place` pass each op carries `placement = #task.device<...>`
(device class, replicas, tensor/pipeline degree, batch) and `estimate = {...}` (latency, throughput).
"""

from __future__ import annotations

from typing import ClassVar

from hetc.dialects import interfaces as I
from hetc.dialects.agent import KVType, ModelOp, PayloadType, check_number
from hetc.targets import kernels as K
from xdsl.dialects.builtin import I64, FloatAttr, IntAttr, IntegerAttr, StringAttr, SymbolNameConstraint, SymbolRefAttr
from xdsl.ir import Dialect, ParametrizedAttribute
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect, Pure
from xdsl.utils.exceptions import VerifyException


@irdl_attr_definition
class DeviceAttr(ParametrizedAttribute):
    """#task.device<"nvidia-h100-sxm", replicas = 3, tp = 2, pp = 1, batch = 32>"""

    name = "task.device"
    device: StringAttr
    replicas: IntAttr
    tp: IntAttr
    pp: IntAttr
    batch: IntAttr

    FIELDS: ClassVar[tuple[str, ...]] = ("replicas", "tp", "pp", "batch")

    def __init__(self, device: str, replicas: int = 1, tp: int = 1, pp: int = 1, batch: int = 1):
        super().__init__(StringAttr(device), IntAttr(replicas), IntAttr(tp), IntAttr(pp), IntAttr(batch))

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        with parser.in_angle_brackets():
            device = StringAttr(parser.parse_str_literal())
            values = []
            for field in cls.FIELDS:
                parser.parse_punctuation(",")
                parser.parse_keyword(field)
                parser.parse_punctuation("=")
                values.append(IntAttr(parser.parse_integer(allow_negative=False)))
        return [device, *values]

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.device.data)
            for field in self.FIELDS:
                printer.print_string(f", {field} = {getattr(self, field).data}")

    def verify(self) -> None:
        if not self.device.data:
            raise VerifyException("task.device: empty device class")
        for field in self.FIELDS:
            if getattr(self, field).data < 1:
                raise VerifyException(f"task.device: {field} must be >= 1")


class TaskOp(IRDLOperation):
    sym_name = prop_def(SymbolNameConstraint())
    node = prop_def(StringAttr)
    inputs = var_operand_def(PayloadType)
    result = result_def(PayloadType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name `(` $inputs `)` attr-dict `:` functional-type($inputs, results)"

    POSITIVE: ClassVar[tuple[str, ...]] = ()  # numeric properties that must be > 0 (the rest >= 0)

    def verify_(self) -> None:
        """Every number finite and not negative, the POSITIVE ones > 0: the cost model divides by them."""
        where = f"{self.name} @{self.sym_name.data}"
        for name, attr in self.properties.items():
            if isinstance(attr, (IntegerAttr, FloatAttr)):
                check_number(where, name, attr.value.data, allow_zero=name not in self.POSITIVE)

    @property
    def kind(self) -> str:
        """The op kind: its name without the dialect (plan.json stage `kind`, hetc's log lines)."""
        return self.name.removeprefix("task.")

    def stage_kind(self) -> str:
        """The plan's `kind` of a stage this op becomes."""
        return self.kind

    def placement(self) -> DeviceAttr | None:
        attr = self.attributes.get("placement")
        return attr if isinstance(attr, DeviceAttr) else None


class ModelTaskOp(TaskOp):
    model = prop_def(SymbolRefAttr)

    def verify_(self) -> None:
        super().verify_()
        if self.get_toplevel_object() is not self:
            from xdsl.traits import SymbolTable

            if not isinstance(SymbolTable.lookup_symbol(self, self.model), ModelOp):
                raise VerifyException(f"{self.name} @{self.sym_name.data}: unknown model {self.model}")


_I = IntegerAttr[I64]


@irdl_op_definition
class PrefillOp(ModelTaskOp):
    name = "task.prefill"
    traits = traits_def(
        Pure(), I.PrefillCost(), I.Served(**I.MODEL_SERVER, echo=("input_tokens",)), I.KernelProvider(K.prefill_kernels)
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens",)
    input_tokens = prop_def(_I)

    def verify_(self) -> None:
        super().verify_()
        if not isinstance(self.result.type, KVType):
            raise VerifyException(f"task.prefill @{self.sym_name.data} must produce !agent.kv")


@irdl_op_definition
class KVTransferOp(ModelTaskOp):
    name = "task.kv_transfer"
    traits = traits_def(
        Pure(), I.MovesKV(), I.Transfer(), I.KVPackKernels()
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("tokens",)
    tokens = prop_def(_I)
    store = opt_prop_def(StringAttr)  # a kv_cache node's placement: local, remote or disaggregated

    def verify_(self) -> None:
        super().verify_()
        if not isinstance(self.result.type, KVType):
            raise VerifyException(f"task.kv_transfer @{self.sym_name.data} must produce !agent.kv")


@irdl_op_definition
class DecodeOp(ModelTaskOp):
    name = "task.decode"
    traits = traits_def(
        Pure(), I.DecodeCost(), I.ContinuousBatching(**I.MODEL_SERVER), I.KernelProvider(K.decode_kernels),
        I.ResultPayload(tokens="output_tokens")
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens", "output_tokens")
    input_tokens = prop_def(_I)
    output_tokens = prop_def(_I)

    def verify_(self) -> None:
        super().verify_()
        if not self.inputs or not isinstance(self.inputs[0].type, KVType):
            raise VerifyException(f"task.decode @{self.sym_name.data}: first input must be the !agent.kv of its prefill")


@irdl_op_definition
class GateOp(ModelTaskOp):
    """MoE router: picks experts_per_token of n_experts per token. Gate and merge run beside their
    phase (the prefill or decode op named `phase`), whose cost model already counts them."""

    name = "task.gate"
    traits = traits_def(
        Pure(), I.RunsWithPhase()
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("n_experts", "experts_per_token")
    phase = prop_def(StringAttr)
    n_experts = prop_def(_I)
    experts_per_token = prop_def(_I)


@irdl_op_definition
class MergeOp(ModelTaskOp):
    name = "task.merge"
    traits = traits_def(
        Pure(), I.RunsWithPhase()
    )
    phase = prop_def(StringAttr)


@irdl_op_definition
class AllReduceOp(TaskOp):
    """Tensor-parallel all-reduce after a phase placed with tp > 1 (inserted by `partition`)."""

    name = "task.allreduce"
    traits = traits_def(
        Pure()
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("tp",)
    tp = prop_def(_I)
    bytes = prop_def(_I)


@irdl_op_definition
class TransferOp(TaskOp):
    """Data moved between ops placed on different device classes (inserted by `partition`)."""

    name = "task.transfer"
    traits = traits_def(
        Pure()
    )
    bytes = prop_def(_I)
    transport = prop_def(StringAttr)


@irdl_op_definition
class EncoderOp(ModelTaskOp):
    """Speech-to-text (encoder over audio frames + short decode) or generic model execution."""

    name = "task.encoder"
    traits = traits_def(
        Pure(), I.ModelPassCost("input_tokens", "output_tokens"), I.Served(**I.MODEL_SERVER),
        I.ResultPayload(tokens="output_tokens")
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens",)
    input_tokens = prop_def(_I)
    output_tokens = prop_def(_I)


@irdl_op_definition
class TTSOp(ModelTaskOp):
    name = "task.tts"
    traits = traits_def(
        Pure(), I.SpeechSynthesisCost(), I.Served(on_gaudi="optimum-habana", elsewhere="torch"),
        I.ResultPayload(audio_seconds="audio_seconds")
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens", "audio_seconds")
    input_tokens = prop_def(_I)
    audio_seconds = prop_def(FloatAttr)


@irdl_op_definition
class EmbedOp(ModelTaskOp):
    name = "task.embed"
    traits = traits_def(
        Pure(), I.ModelPassCost("tokens"), I.Served(**I.MODEL_SERVER), I.EMBED_KERNELS
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("tokens",)
    tokens = prop_def(_I)


@irdl_op_definition
class VectorSearchOp(TaskOp):
    name = "task.vector_search"
    traits = traits_def(
        MemoryReadEffect(), I.VectorSearchCost(), I.Served(), I.SearchKernels(), I.ResultPayload(documents="top_k")
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("n_vectors", "dim", "top_k")
    n_vectors = prop_def(_I)
    dim = prop_def(_I)
    precision = prop_def(StringAttr)
    index = prop_def(StringAttr)
    top_k = prop_def(_I)


@irdl_op_definition
class RerankOp(ModelTaskOp):
    name = "task.rerank"
    traits = traits_def(
        Pure(), I.ModelPassCost("tokens"), I.Served(**I.MODEL_SERVER)
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("tokens",)
    tokens = prop_def(_I)


@irdl_op_definition
class ToolLookupOp(TaskOp):
    """The external part of a tool call: a network round trip (declared latency)."""

    name = "task.tool_lookup"
    traits = traits_def(
        MemoryReadEffect(), MemoryWriteEffect(), I.NetworkCallCost("request_kb", "response_kb"),
        I.FixedLatency(**I.HTTP_CLIENT, reached_by="http", p99="latency_p99_ms"), I.ResultPayload(documents_kb="response_kb")
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("latency_ms", "latency_p99_ms")
    tool = prop_def(StringAttr)
    latency_ms = prop_def(FloatAttr)
    latency_p99_ms = opt_prop_def(FloatAttr)
    request_kb = prop_def(FloatAttr)
    response_kb = prop_def(FloatAttr)


@irdl_op_definition
class ComputeOp(TaskOp):
    """General-purpose CPU work (tool post-processing, parsing, routing, filters)."""

    name = "task.compute"
    traits = traits_def(
        Pure(), I.CpuWorkCost(), I.FixedLatency(on_gaudi="cpu-runtime", elsewhere="cpu-runtime"),
        I.KernelProvider(K.compute_kernels)
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("cpu_ms",)
    cpu_ms = prop_def(FloatAttr)
    kernel = opt_prop_def(StringAttr)

    def stage_kind(self) -> str:
        """The local processing of a tool call (decompose-tools names it <node>.compute) is a `tool_compute`."""
        return "tool_compute" if self.node.data and self.sym_name.data.endswith(".compute") else self.kind


@irdl_op_definition
class MemoryStoreOp(TaskOp):
    """A write to a vector store (its latency_ms is the store's round trip)."""

    name = "task.memory_store"
    traits = traits_def(
        MemoryWriteEffect(), I.NetworkCallCost(), I.FixedLatency(**I.HTTP_CLIENT)
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("n_vectors", "dim")
    latency_ms = prop_def(FloatAttr)
    n_vectors = prop_def(_I)
    dim = prop_def(_I)
    precision = prop_def(StringAttr)


@irdl_op_definition
class GuardrailOp(ModelTaskOp):
    """A safety classifier (e.g. Llama Guard) reads the text and passes it on or blocks it: one pass of its
    model over input_tokens (the text and the policy prompt) to a verdict of output_tokens."""

    name = "task.guardrail"
    traits = traits_def(
        Pure(), I.ModelPassCost("input_tokens", "output_tokens"), I.Served(**I.MODEL_SERVER),
        I.ResultPayload(passes_input_on=True)
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens", "output_tokens")
    input_tokens = prop_def(_I)
    output_tokens = prop_def(_I)


TASK_OPS = (
    PrefillOp, KVTransferOp, DecodeOp, GateOp, MergeOp, AllReduceOp, TransferOp, EncoderOp, TTSOp,
    EmbedOp, VectorSearchOp, RerankOp, ToolLookupOp, ComputeOp, MemoryStoreOp, GuardrailOp,
)

Task = Dialect("task", list(TASK_OPS), [DeviceAttr])
