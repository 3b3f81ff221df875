"""The `agent` dialect: the agent graph as the user wrote it.

One op per spec node, SSA values for edges typed by the payload they carry. Node ids are the ops'
symbol names (`@"stt"`); models are module-level `agent.model` symbols holding the architecture, so
nothing after the frontend needs the YAML. Control flow stays explicit: `agent.branch` passes a value
on with a probability, `agent.loop` runs its body at most 1 + max_iterations times and carries the
values of its back edges to the next iteration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
)
from xdsl.ir import Attribute, Block, Dialect, ParametrizedAttribute, Region, SSAValue, TypeAttribute
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    lazy_traits_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from hetc.models import PRECISION_BYTES, ModelArch
from hetc.spec_loader import ARCH_RULES, MAX_ITERATIONS, MAX_MS, MAX_RPS, NODE_FIELDS, FieldRule, Limit, arch_problems

# ---------------------------------------------------------------------------------------------- types


class PayloadType(ParametrizedAttribute, TypeAttribute):
    """Base of the edge types; `payload` is the spec's name for it."""

    PAYLOAD: ClassVar[str] = ""


@irdl_attr_definition
class TextType(PayloadType):
    name = "agent.text"
    PAYLOAD = "text"


@irdl_attr_definition
class TokensType(PayloadType):
    name = "agent.tokens"
    PAYLOAD = "tokens"


@irdl_attr_definition
class AudioType(PayloadType):
    name = "agent.audio"
    PAYLOAD = "audio"


@irdl_attr_definition
class EmbeddingType(PayloadType):
    name = "agent.embedding"
    PAYLOAD = "embedding"


@irdl_attr_definition
class DocumentsType(PayloadType):
    name = "agent.documents"
    PAYLOAD = "documents"


@irdl_attr_definition
class KVType(PayloadType):
    name = "agent.kv"
    PAYLOAD = "kv"


@irdl_attr_definition
class JsonType(PayloadType):
    name = "agent.json"
    PAYLOAD = "json"


PAYLOAD_TYPES: dict[str, type[PayloadType]] = {
    t.PAYLOAD: t for t in (TextType, TokensType, AudioType, EmbeddingType, DocumentsType, KVType, JsonType)
}


def payload_type(name: str) -> PayloadType:
    return PAYLOAD_TYPES[name]()


# ------------------------------------------------------------------------------------------- helpers

_NODE_FORMAT = "$sym_name `(` $inputs `)` attr-dict `:` functional-type($inputs, results)"


def check_number(where: str, name: str, value: float, allow_zero: bool = True, limit: Limit | None = None) -> None:
    """What the passes rely on for every number in the IR: finite, not negative (> 0 unless zero is
    allowed), and within the spec's limit for the field where it has one."""
    if isinstance(value, float) and not math.isfinite(value):
        raise VerifyException(f"{where}: {name} must be a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise VerifyException(f"{where}: {name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    if limit is not None and value > limit.maximum:
        raise VerifyException(f"{where}: {name} = {value} is above {limit.maximum:g} ({limit.reason})")


# IR property -> the spec field it holds, where the names differ (the spec loader's rules are the ranges)
_SPEC_FIELD = {"payload_bytes": "bytes", "store": "placement", "kernel": "op"}


def _check_fields(op: IRDLOperation, kind: str) -> None:
    """Every number and choice of a node op against the spec loader's rule for its field (NODE_FIELDS)."""
    rules: dict[str, FieldRule] = {r.name: r for r in NODE_FIELDS.get(kind, ())}
    where = f"{op.name} @{op.sym_name.data}"
    for name, attr in op.properties.items():
        rule = rules.get(_SPEC_FIELD.get(name, name))
        if isinstance(attr, (IntegerAttr, FloatAttr)):
            check_number(where, name, attr.value.data, rule.allow_zero if rule else True, rule.limit if rule else None)
        elif isinstance(attr, StringAttr) and rule is not None and rule.choices and attr.data not in rule.choices:
            raise VerifyException(f"{where}: {name} must be one of {'|'.join(rule.choices)}, got {attr.data!r}")


def _arch_of(op: ModelOp) -> ModelArch:
    """The architecture an agent.model holds, each field checked against the spec loader's ARCH_RULES."""
    where = f"agent.model @{op.sym_name.data}"
    values: dict[str, object] = {"name": op.sym_name.data}
    for key, attr in op.arch.data.items():
        rule = ARCH_RULES.get(key)
        if rule is None:
            raise VerifyException(f"{where}: unknown arch field '{key}'")
        if rule.type in ("int", "bool"):
            if not isinstance(attr, IntegerAttr):
                raise VerifyException(f"{where}: arch field '{key}' must be an integer")
            value = attr.value.data
            if rule.type == "bool" and value not in (0, 1):
                raise VerifyException(f"{where}: arch field '{key}' must be 0 or 1, got {value}")
            check_number(where, key, value, rule.allow_zero or rule.type == "bool", rule.limit)
            values[key] = bool(value) if rule.type == "bool" else value
        else:
            if not isinstance(attr, StringAttr):
                raise VerifyException(f"{where}: arch field '{key}' must be a string")
            if rule.choices and attr.data not in rule.choices:
                raise VerifyException(f"{where}: arch kind must be one of {'|'.join(rule.choices)}, got {attr.data!r}")
            values[key] = attr.data
    return ModelArch(**values)


def _require_inputs(op: IRDLOperation, accepted: tuple[type[PayloadType], ...], at_least: int = 1) -> None:
    if len(op.inputs) < at_least:
        raise VerifyException(f"{op.name} @{op.sym_name.data}: expected at least {at_least} input(s)")
    for value in op.inputs:
        if not isinstance(value.type, accepted):
            names = ", ".join(f"!{t.name}" for t in accepted)
            raise VerifyException(
                f"{op.name} @{op.sym_name.data}: input of type {value.type} is not accepted; expected {names}"
            )


_TEXTUAL = (TextType, TokensType, DocumentsType, JsonType, EmbeddingType)
_LLM_INPUTS = (*_TEXTUAL, KVType)  # a kv_cache node can hand an LLM its conversation's cache
_ANY = tuple(PAYLOAD_TYPES.values())


class NodeOp(IRDLOperation):
    """Common shape of a graph node: symbol name, typed inputs, attributes in the attr dict."""

    sym_name = prop_def(SymbolNameConstraint())
    inputs = var_operand_def(PayloadType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = _NODE_FORMAT

    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = _ANY
    MIN_INPUTS: ClassVar[int] = 1
    SPEC_KIND: ClassVar[str] = ""  # the spec node kind (docs/spec.md) whose field rules apply

    def node_id(self) -> str:
        return self.sym_name.data

    def verify_(self) -> None:
        _require_inputs(self, self.ACCEPTED_INPUTS, self.MIN_INPUTS)
        _check_fields(self, self.SPEC_KIND)


class ModelNodeOp(NodeOp):
    model = prop_def(SymbolRefAttr)

    def verify_(self) -> None:
        super().verify_()
        module = self.get_toplevel_object()
        from xdsl.traits import SymbolTable

        if module is not self and not isinstance(SymbolTable.lookup_symbol(self, self.model), ModelOp):
            raise VerifyException(f"{self.name} @{self.node_id()}: unknown model {self.model}")


# ---------------------------------------------------------------------------------------------- ops


@irdl_op_definition
class ModelOp(IRDLOperation):
    """A model the graph uses: architecture numbers and precision (module level)."""

    name = "agent.model"
    sym_name = prop_def(SymbolNameConstraint())
    arch = prop_def(DictionaryAttr)
    precision = prop_def(StringAttr)
    kv_precision = prop_def(StringAttr)
    traits = traits_def(SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name attr-dict"

    def verify_(self) -> None:
        for key in ("kind", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size"):
            if key not in self.arch.data:
                raise VerifyException(f"agent.model @{self.sym_name.data}: arch lacks '{key}'")
        for key in ("precision", "kv_precision"):
            if getattr(self, key).data not in PRECISION_BYTES:
                raise VerifyException(f"agent.model @{self.sym_name.data}: {key} must be one of "
                                      f"{'|'.join(PRECISION_BYTES)}, got {getattr(self, key).data!r}")
        for _, message in arch_problems(_arch_of(self)):
            raise VerifyException(f"agent.model @{self.sym_name.data}: {message}")


@irdl_op_definition
class GraphOp(IRDLOperation):
    """An agent: a single-block region of node ops. Needs at least one agent.output."""

    name = "agent.graph"
    sym_name = prop_def(SymbolNameConstraint())
    body = region_def("single_block")
    traits = traits_def(SymbolOpInterface(), IsolatedFromAbove(), NoTerminator())
    assembly_format = "$sym_name attr-dict-with-keyword $body"

    def __init__(self, sym_name: str, attributes: dict[str, Attribute] | None = None):
        super().__init__(
            properties={"sym_name": StringAttr(sym_name)}, regions=[Region(Block())], attributes=attributes or {}
        )

    def verify_(self) -> None:
        names: set[str] = set()
        has_output = False
        for op in self.walk():
            name = op.properties.get("sym_name") if op is not self else None
            if isinstance(name, StringAttr):  # node ops and the task ops they decompose into
                if name.data in names:
                    raise VerifyException(f"agent.graph @{self.sym_name.data}: duplicate node @{name.data}")
                names.add(name.data)
            has_output |= isinstance(op, OutputOp)
        if not has_output:
            raise VerifyException(f"agent.graph @{self.sym_name.data} has no agent.output: nothing leaves the graph")
        for key in ("hetc.slo", "hetc.traffic", "hetc.hardware"):
            if key in self.attributes:
                _check_settings(f"agent.graph @{self.sym_name.data}: {key}", self.attributes[key])


# settings a graph carries for placement (from the spec's slo/traffic): the numbers that must be > 0
_SETTING_LIMITS = {"latency_ms": MAX_MS, "ttft_ms": MAX_MS, "tbt_ms": MAX_MS, "requests_per_s": MAX_RPS}


def _check_settings(where: str, attr: Attribute) -> None:
    """Numbers in the graph's hetc.slo/traffic/hardware dictionaries: finite, >= 0 (targets and rates > 0)."""
    pending = [("", attr)]  # a loop: hand-written IR may nest deeply
    while pending:
        name, value = pending.pop()
        if isinstance(value, DictionaryAttr):
            pending.extend(value.data.items())
        elif isinstance(value, ArrayAttr):
            pending.extend((name, v) for v in value.data)
        elif isinstance(value, (IntegerAttr, FloatAttr)):
            limit = _SETTING_LIMITS.get(name)
            check_number(where, name, value.value.data, allow_zero=limit is None, limit=limit)


@irdl_op_definition
class InputOp(NodeOp):
    """A source of the graph: `produces` tokens/audio of the given size per request."""

    name = "agent.input"
    SPEC_KIND: ClassVar[str] = "input"
    result = result_def(PayloadType)
    tokens = opt_prop_def(IntegerAttr[I64])
    audio_seconds = opt_prop_def(FloatAttr)
    payload_bytes = opt_prop_def(IntegerAttr[I64])
    MIN_INPUTS: ClassVar[int] = 0


@irdl_op_definition
class OutputOp(NodeOp):
    name = "agent.output"
    SPEC_KIND: ClassVar[str] = "output"
    assembly_format = "$sym_name `(` $inputs `)` attr-dict `:` type($inputs)"


@irdl_op_definition
class LLMOp(ModelNodeOp):
    name = "agent.llm"
    SPEC_KIND: ClassVar[str] = "llm"
    result = result_def(TextType)
    input_tokens = prop_def(IntegerAttr[I64])
    output_tokens = prop_def(IntegerAttr[I64])
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = _LLM_INPUTS


@irdl_op_definition
class SpeechToTextOp(ModelNodeOp):
    name = "agent.speech_to_text"
    SPEC_KIND: ClassVar[str] = "speech_to_text"
    result = result_def(TextType)
    audio_seconds = prop_def(FloatAttr)
    output_tokens = prop_def(IntegerAttr[I64])
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (AudioType,)


@irdl_op_definition
class TextToSpeechOp(ModelNodeOp):
    name = "agent.text_to_speech"
    SPEC_KIND: ClassVar[str] = "text_to_speech"
    result = result_def(AudioType)
    input_tokens = prop_def(IntegerAttr[I64])
    audio_seconds = prop_def(FloatAttr)
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, JsonType)


@irdl_op_definition
class EmbeddingOp(ModelNodeOp):
    name = "agent.embedding"
    SPEC_KIND: ClassVar[str] = "embedding"
    result = result_def(EmbeddingType)
    tokens = prop_def(IntegerAttr[I64])
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, DocumentsType, JsonType)


@irdl_op_definition
class ModelCallOp(ModelNodeOp):
    """Generic model execution (encoder only when output_tokens = 0)."""

    name = "agent.model_call"
    SPEC_KIND: ClassVar[str] = "model"
    result = result_def(PayloadType)
    input_tokens = prop_def(IntegerAttr[I64])
    output_tokens = prop_def(IntegerAttr[I64])


@irdl_op_definition
class KVCacheOp(ModelNodeOp):
    name = "agent.kv_cache"
    SPEC_KIND: ClassVar[str] = "kv_cache"
    result = result_def(KVType)
    tokens = prop_def(IntegerAttr[I64])
    store = prop_def(StringAttr)


@irdl_op_definition
class ToolOp(NodeOp):
    """An external tool call: a network round trip plus optional local CPU processing."""

    name = "agent.tool"
    SPEC_KIND: ClassVar[str] = "tool"
    result = result_def(DocumentsType)
    tool = prop_def(StringAttr)
    latency_ms = prop_def(FloatAttr)
    latency_p99_ms = opt_prop_def(FloatAttr)
    compute_ms = prop_def(FloatAttr)
    request_kb = prop_def(FloatAttr)
    response_kb = prop_def(FloatAttr)

    def verify_(self) -> None:
        super().verify_()
        if self.latency_p99_ms is not None and self.latency_p99_ms.value.data < self.latency_ms.value.data:
            raise VerifyException(f"agent.tool @{self.node_id()}: latency_p99_ms is below latency_ms")


@irdl_op_definition
class MemoryLookupOp(NodeOp):
    """Retrieval from a vector store; with `embed_model`, the query is embedded first."""

    name = "agent.memory_lookup"
    SPEC_KIND: ClassVar[str] = "memory_lookup"
    result = result_def(DocumentsType)
    n_vectors = prop_def(IntegerAttr[I64])
    dim = prop_def(IntegerAttr[I64])
    precision = prop_def(StringAttr)
    index = prop_def(StringAttr)
    top_k = prop_def(IntegerAttr[I64])
    query_tokens = prop_def(IntegerAttr[I64])
    embed_model = opt_prop_def(SymbolRefAttr)
    rerank_model = opt_prop_def(SymbolRefAttr)
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, EmbeddingType, JsonType, DocumentsType)

    def verify_(self) -> None:
        super().verify_()
        if self.top_k.value.data > self.n_vectors.value.data:
            raise VerifyException(f"agent.memory_lookup @{self.node_id()}: top_k is larger than n_vectors")


@irdl_op_definition
class MemoryStoreOp(NodeOp):
    name = "agent.memory_store"
    SPEC_KIND: ClassVar[str] = "memory_store"
    result = result_def(JsonType)
    n_vectors = prop_def(IntegerAttr[I64])
    dim = prop_def(IntegerAttr[I64])
    precision = prop_def(StringAttr)
    tokens = prop_def(IntegerAttr[I64])  # text embedded per call by embed_model
    latency_ms = prop_def(FloatAttr)
    embed_model = opt_prop_def(SymbolRefAttr)


@irdl_op_definition
class ComputeOp(NodeOp):
    """General-purpose CPU work (parsing, routing, filtering): cpu_ms on one core per invocation."""

    name = "agent.compute"
    SPEC_KIND: ClassVar[str] = "compute"
    result = result_def(PayloadType)
    cpu_ms = prop_def(FloatAttr)
    kernel = opt_prop_def(StringAttr)


@irdl_op_definition
class GuardrailOp(ModelNodeOp):
    """A safety classifier (e.g. Llama Guard 3) screens the text and passes it on or blocks it; the share it
    blocks is the probability on its out-edge (a blocked request goes no further)."""

    name = "agent.guardrail"
    SPEC_KIND: ClassVar[str] = "guardrail"
    result = result_def(TextType)
    input_tokens = prop_def(IntegerAttr[I64])
    output_tokens = prop_def(IntegerAttr[I64])
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, DocumentsType, JsonType)


@irdl_op_definition
class BranchOp(NodeOp):
    """Passes its input on with `probability`: the edge of a conditional branch."""

    name = "agent.branch"
    result = result_def(PayloadType)
    probability = prop_def(FloatAttr)

    def verify_(self) -> None:
        super().verify_()
        if len(self.inputs) != 1 or self.inputs[0].type != self.result.type:
            raise VerifyException(f"agent.branch @{self.node_id()}: takes one input and returns its type")
        p = self.probability.value.data
        if not 0.0 < p <= 1.0:
            raise VerifyException(f"agent.branch @{self.node_id()}: probability must be in (0, 1], got {p}")


@irdl_op_definition
class CallOp(NodeOp):
    """A nested agent: runs graph `callee` with the inputs bound to its agent.input ops in order."""

    name = "agent.call"
    callee = prop_def(SymbolRefAttr)
    outs = var_result_def(PayloadType)
    plan_as_unit = opt_prop_def(IntegerAttr[I64])
    MIN_INPUTS: ClassVar[int] = 0

    def verify_(self) -> None:
        """As func.call: the callee exists and takes and returns what the call passes and expects."""
        super().verify_()
        if self.get_toplevel_object() is self:
            return
        from xdsl.traits import SymbolTable

        where = f"agent.call @{self.node_id()}"
        callee = SymbolTable.lookup_symbol(self, self.callee)
        if not isinstance(callee, GraphOp):
            raise VerifyException(f"{where}: unknown callee {self.callee} (no agent.graph of that name)")
        takes = [op.result.type for op in callee.body.block.ops if isinstance(op, InputOp)]
        # an output joining several edges returns what its first edge brings (as the frontend builds the call)
        gives = [op.inputs[0].type for op in callee.walk() if isinstance(op, OutputOp) and op.inputs]
        passed, expected = [v.type for v in self.inputs], [r.type for r in self.outs]
        if takes != passed:
            raise VerifyException(f"{where}: {self.callee} takes ({', '.join(map(str, takes))}) but the call passes "
                                  f"({', '.join(map(str, passed))})")
        if gives != expected:
            raise VerifyException(f"{where}: {self.callee} returns ({', '.join(map(str, gives))}) but the call "
                                  f"expects ({', '.join(map(str, expected))})")


@irdl_op_definition
class LoopOp(NodeOp):
    """A bounded loop. The body block's arguments are the loop inputs followed by one feedback value per
    back edge (absent on the first iteration). The body runs at most 1 + max_iterations times."""

    name = "agent.loop"
    outs = var_result_def(PayloadType)
    max_iterations = prop_def(IntegerAttr[I64])
    body = region_def("single_block")
    MIN_INPUTS: ClassVar[int] = 0
    assembly_format = (
        "$sym_name `(` $inputs `)` attr-dict `:` functional-type($inputs, results) $body"
    )

    def verify_(self) -> None:
        super().verify_()
        bound = self.max_iterations.value.data
        if bound < 1:
            raise VerifyException(f"agent.loop @{self.node_id()}: max_iterations must be >= 1 (a loop needs a bound)")
        check_number(f"agent.loop @{self.node_id()}", "max_iterations", bound, limit=MAX_ITERATIONS)
        block = self.body.block
        term = block.last_op
        if not isinstance(term, LoopYieldOp):
            raise VerifyException(f"agent.loop @{self.node_id()}: body must end with agent.loop_yield")
        n_in = len(self.inputs)
        arg_types = [a.type for a in block.args]
        if arg_types[:n_in] != [v.type for v in self.inputs]:
            raise VerifyException(f"agent.loop @{self.node_id()}: body arguments must start with the input types")
        if arg_types[n_in:] != [v.type for v in term.feedback]:
            raise VerifyException(
                f"agent.loop @{self.node_id()}: feedback values must match the trailing body arguments"
            )
        if not term.feedback:
            raise VerifyException(f"agent.loop @{self.node_id()}: a loop needs at least one feedback value")
        if [v.type for v in term.exits] != [r.type for r in self.outs]:
            raise VerifyException(f"agent.loop @{self.node_id()}: exit values must match the loop results")


@irdl_op_definition
class LoopYieldOp(IRDLOperation):
    name = "agent.loop_yield"
    exits = var_operand_def(PayloadType)
    feedback = var_operand_def(PayloadType)
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(LoopOp)))
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = "`exits` `(` $exits `:` type($exits) `)` `feedback` `(` $feedback `:` type($feedback) `)` attr-dict"

    def __init__(self, exits: Sequence[SSAValue], feedback: Sequence[SSAValue]):
        super().__init__(operands=[list(exits), list(feedback)])


Agent = Dialect(
    "agent",
    [
        ModelOp, GraphOp, InputOp, OutputOp, LLMOp, SpeechToTextOp, TextToSpeechOp, EmbeddingOp, ModelCallOp,
        KVCacheOp, ToolOp, MemoryLookupOp, MemoryStoreOp, ComputeOp, GuardrailOp, BranchOp, CallOp, LoopOp, LoopYieldOp,
    ],
    [TextType, TokensType, AudioType, EmbeddingType, DocumentsType, KVType, JsonType],
)
