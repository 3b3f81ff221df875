"""The `task` dialect: granular operators after decomposition, and their placement.

Every op is one schedulable task of paper-method.md section 1 (prefill, decode, KV transfer, MoE
gate/experts/merge, all-reduce, tool lookup/compute, embed, vector search, ...). `node` keeps the id of
the spec node it came from. After the `place` pass each op carries `placement = #task.device<...>`
(device class, replicas, tensor/pipeline degree, batch) and `estimate = {...}` (latency, throughput).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    DictionaryAttr,
    Float64Type,
    FloatAttr,
    FloatData,
    IntAttr,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
)
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

from hetc.dialects import interfaces as I
from hetc.dialects.agent import KVType, ModelOp, PayloadType, check_number, parse_named_values
from hetc.dialects.trait_lookup import MemoisedTraits
from hetc.hwdb.schema import KINDS as DEVICE_KINDS
from hetc.targets import kernels as K


@irdl_attr_definition
class DeviceAttr(ParametrizedAttribute):
    """#task.device<"nvidia-h100-sxm", kind = "gpu", replicas = 3, tp = 2, pp = 1, batch = 32>

    `kind` is the device class's kind in the hardware database (gpu, accelerator, cpu): partition chooses a
    transport by it. IR written before it was part of the placement leaves it out (printed and read as "")."""

    name = "task.device"
    device: StringAttr
    replicas: IntAttr
    tp: IntAttr
    pp: IntAttr
    batch: IntAttr
    kind: StringAttr

    FIELDS: ClassVar[tuple[str, ...]] = ("replicas", "tp", "pp", "batch")

    def __init__(self, device: str, replicas: int = 1, tp: int = 1, pp: int = 1, batch: int = 1, kind: str = ""):
        super().__init__(StringAttr(device), IntAttr(replicas), IntAttr(tp), IntAttr(pp), IntAttr(batch),
                         StringAttr(kind))

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        with parser.in_angle_brackets():
            device = StringAttr(parser.parse_str_literal())
            kind = StringAttr("")
            values = []
            for field in cls.FIELDS:
                parser.parse_punctuation(",")
                if field == "replicas" and parser.parse_optional_keyword("kind") is not None:
                    parser.parse_punctuation("=")
                    kind = StringAttr(parser.parse_str_literal())
                    parser.parse_punctuation(",")
                parser.parse_keyword(field)
                parser.parse_punctuation("=")
                values.append(IntAttr(parser.parse_integer(allow_negative=False)))
        return [device, *values, kind]

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.device.data)
            if self.kind.data:
                printer.print_string(", kind = ")
                printer.print_string_literal(self.kind.data)
            for field in self.FIELDS:
                printer.print_string(f", {field} = {getattr(self, field).data}")

    def verify(self) -> None:
        if not self.device.data:
            raise VerifyException("task.device: empty device class")
        if self.kind.data and self.kind.data not in DEVICE_KINDS:
            raise VerifyException(f"task.device: kind must be one of {'|'.join(DEVICE_KINDS)}, got {self.kind.data!r}")
        for field in self.FIELDS:
            if getattr(self, field).data < 1:
                raise VerifyException(f"task.device: {field} must be >= 1")

    def with_shape(self, replicas: int = 1, tp: int = 1, pp: int = 1, batch: int = 1) -> DeviceAttr:
        """The same device class (and kind) with another replica count, parallelism and batch."""
        return DeviceAttr(self.device.data, replicas, tp, pp, batch, self.kind.data)


_SHA256 = re.compile(r"[0-9a-f]{64}")


@irdl_attr_definition
class TargetAttr(ParametrizedAttribute):
    """#task.target<"default", extra = ["my-devices.yaml"], sha256 = "9f2c...">: the hardware database a compile
    prices with (a bundled name or a folder, plus extra device files) and its sha256. The compile driver records
    it once on the module (`hetc.target`); every stage reads it there, and no pass option names a database.
    Hand-written IR may leave out the sha256 (""): place fills it in from the database it loads."""

    name = "task.target"
    hwdb: StringAttr
    extra: ArrayAttr[StringAttr]
    sha256: StringAttr

    def __init__(self, hwdb: str, extra: Sequence[str] = (), sha256: str = ""):
        super().__init__(StringAttr(hwdb), ArrayAttr([StringAttr(e) for e in extra]), StringAttr(sha256))

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        with parser.in_angle_brackets():
            hwdb = StringAttr(parser.parse_str_literal())
            extra, sha256 = ArrayAttr([]), StringAttr("")
            if parser.parse_optional_punctuation(",") is not None:
                if parser.parse_optional_keyword("extra") is not None:
                    parser.parse_punctuation("=")
                    extra = ArrayAttr(parser.parse_comma_separated_list(
                        parser.Delimiter.SQUARE, lambda: StringAttr(parser.parse_str_literal())))
                    if parser.parse_optional_punctuation(",") is None:
                        return [hwdb, extra, sha256]
                parser.parse_keyword("sha256")
                parser.parse_punctuation("=")
                sha256 = StringAttr(parser.parse_str_literal())
        return [hwdb, extra, sha256]

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.hwdb.data)
            if self.extra.data:
                printer.print_string(", extra = [")
                printer.print_list(self.extra.data, lambda e: printer.print_string_literal(e.data))
                printer.print_string("]")
            if self.sha256.data:
                printer.print_string(", sha256 = ")
                printer.print_string_literal(self.sha256.data)

    def verify(self) -> None:
        if not self.hwdb.data:
            raise VerifyException("task.target: empty hardware database name")
        if self.sha256.data and not _SHA256.fullmatch(self.sha256.data):
            raise VerifyException(f"task.target: sha256 must be 64 lowercase hex digits, got {self.sha256.data!r}")

    def extra_files(self) -> list[str]:
        return [e.data for e in self.extra.data]


def _float_literal(value: float) -> str:
    """A float as an MLIR float literal that reads back to the same value (MLIR's needs a '.'); `inf` for an
    unbounded rate."""
    if math.isinf(value) and value > 0:
        return "inf"
    text = repr(float(value))
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (f"e{exponent}" if exponent else "")


@irdl_attr_definition
class EstimateAttr(ParametrizedAttribute):
    """#task.estimate<latency_ms = 42.0, throughput_rps = 3.5, load = 1.0, worst = 1.0, usd_per_hour = 2.1,
    owned_devices = 0, tbt_ms = 0.02, memory_gb = 17.0>: what place predicted for the op's chosen candidate.
    The first six are always there: latency per invocation, planning throughput per replica, expected and
    worst invocations per request, $/hour and owned devices; then the candidate's metrics (METRICS). Each is a
    finite number >= 0, but a rate may be `inf` (an op that takes no measurable time)."""

    name = "task.estimate"
    latency_ms: FloatData
    throughput_rps: FloatData
    load: FloatData
    worst: FloatData
    usd_per_hour: FloatData
    owned_devices: IntAttr
    metrics: DictionaryAttr  # name in METRICS -> FloatAttr (f64)

    REQUIRED: ClassVar[tuple[str, ...]] = ("latency_ms", "throughput_rps", "load", "worst", "usd_per_hour",
                                           "owned_devices")
    # what hetc.placement.candidates reports per candidate and the plan reads (docs/plan.md, "predicted" and "service")
    METRICS: ClassVar[tuple[str, ...]] = (
        "peak_throughput_rps", "memory_gb", "ttft_ms", "tbt_ms", "tokens_per_s_per_device", "ms_base",
        "ms_per_item", "step_ms_base", "step_ms_per_seq")
    # rates that are unbounded (inf) for an op that takes no measurable time
    RATES: ClassVar[tuple[str, ...]] = ("throughput_rps", "peak_throughput_rps", "tokens_per_s_per_device")

    @classmethod
    def from_values(cls, values: Mapping[str, float]) -> EstimateAttr:
        missing = [k for k in cls.REQUIRED if k not in values]
        if missing:
            raise VerifyException(f"task.estimate: missing {', '.join(missing)}")
        unknown = sorted(set(values) - set(cls.REQUIRED) - set(cls.METRICS))
        if unknown:
            raise VerifyException(f"task.estimate: unknown field(s) {', '.join(unknown)}; expected "
                                  f"{', '.join(cls.REQUIRED + cls.METRICS)}")
        metrics = DictionaryAttr({k: FloatAttr(float(values[k]), Float64Type())
                                  for k in cls.METRICS if k in values})
        return cls(*(FloatData(float(values[k])) for k in cls.REQUIRED[:-1]),
                   IntAttr(int(values["owned_devices"])), metrics)

    def values(self) -> dict[str, float]:
        out: dict[str, float] = {k: getattr(self, k).data for k in self.REQUIRED}
        out.update({k: v.value.data for k, v in self.metrics.data.items()})
        return out

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        def number() -> float:
            return math.inf if parser.parse_optional_keyword("inf") is not None else parser.parse_number()

        estimate = cls.from_values(parse_named_values(parser, "task.estimate", number))
        return [getattr(estimate, k) for k in (*cls.REQUIRED, "metrics")]

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            items = [f"{k} = {_float_literal(v)}" if k != "owned_devices" else f"{k} = {int(v)}"
                     for k, v in self.values().items()]
            printer.print_string(", ".join(items))

    def verify(self) -> None:
        for key, value in self.values().items():
            unbounded = key in self.RATES and value == math.inf
            if not (math.isfinite(value) or unbounded) or value < 0:
                raise VerifyException(f"task.estimate: {key} must be a finite number >= 0, got {value}")
        unknown = set(self.metrics.data) - set(self.METRICS)
        if unknown:
            raise VerifyException(f"task.estimate: unknown metric(s) {', '.join(sorted(unknown))}")


def estimate_of(op) -> dict[str, float]:
    """An op's placement estimate as numbers by name ({} when place gave it none)."""
    estimate = op.attributes.get("estimate")
    return estimate.values() if isinstance(estimate, EstimateAttr) else {}


def module_target(module) -> TargetAttr | None:
    """The hardware target a module records (`hetc.target`), if any."""
    target = module.attributes.get("hetc.target")
    return target if isinstance(target, TargetAttr) else None


class TaskOp(MemoisedTraits, IRDLOperation):
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
    result = result_def(KVType)  # the KV cache its decode reads


@irdl_op_definition
class KVTransferOp(ModelTaskOp):
    name = "task.kv_transfer"
    traits = traits_def(
        Pure(), I.MovesKV(), I.Transfer(), I.KVPackKernels()
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("tokens",)
    tokens = prop_def(_I)
    store = opt_prop_def(StringAttr)  # a kv_cache node's placement: local, remote or disaggregated
    result = result_def(KVType)


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
        Pure(), I.ModelPassCost("input_tokens", "output_tokens"), I.Served(**I.TRANSCRIPTION_SERVER),
        I.ResultPayload(tokens="output_tokens")
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens",)
    input_tokens = prop_def(_I)
    output_tokens = prop_def(_I)


@irdl_op_definition
class TTSOp(ModelTaskOp):
    name = "task.tts"
    traits = traits_def(
        Pure(), I.SpeechSynthesisCost(), I.Served(**I.SPEECH_SERVER),
        I.ResultPayload(audio_seconds="audio_seconds")
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens", "audio_seconds")
    input_tokens = prop_def(_I)
    audio_seconds = prop_def(FloatAttr)


@irdl_op_definition
class EmbedOp(ModelTaskOp):
    name = "task.embed"
    traits = traits_def(
        Pure(), I.ModelPassCost("tokens"), I.Served(**I.EMBEDDING_SERVER), I.EMBED_KERNELS
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
    """A cross-encoder rescores the search's documents against the query (one pass over the query and each
    document, `tokens` in all) and reorders them, asked of the engine serving it (RERANK_API) on every device
    class."""

    name = "task.rerank"
    traits = traits_def(
        Pure(), I.ModelPassCost("tokens"), I.Served(**I.RERANK_SERVER)
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
    model over input_tokens (the text and the policy prompt) to a verdict of output_tokens, asked of the engine
    serving it (SAFETY_VERDICT_API) on every device class."""

    name = "task.guardrail"
    traits = traits_def(
        Pure(), I.ModelPassCost("input_tokens", "output_tokens"),
        I.Served(**I.MODEL_SERVER, echo=("output_tokens",), api=I.SAFETY_VERDICT_API), I.ResultPayload(passes_input_on=True)
    )
    POSITIVE: ClassVar[tuple[str, ...]] = ("input_tokens", "output_tokens")
    input_tokens = prop_def(_I)
    output_tokens = prop_def(_I)


TASK_OPS = (
    PrefillOp, KVTransferOp, DecodeOp, GateOp, MergeOp, AllReduceOp, TransferOp, EncoderOp, TTSOp,
    EmbedOp, VectorSearchOp, RerankOp, ToolLookupOp, ComputeOp, MemoryStoreOp, GuardrailOp,
)

Task = Dialect("task", list(TASK_OPS), [DeviceAttr, TargetAttr, EstimateAttr])
