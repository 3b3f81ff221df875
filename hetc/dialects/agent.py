"""The `agent` dialect: the agent graph as the user wrote it.

One op per spec node, SSA values for edges typed by the payload they carry. Node ids are the ops'
symbol names (`@"stt"`); models are module-level `agent.model` symbols holding the architecture, so
nothing after the frontend needs the YAML. Control flow stays explicit: `agent.branch` passes a value
on with a probability, `agent.loop` runs its body at most 1 + max_iterations times and carries the
values of its back edges to the next iteration.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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
    AttrConstraint,
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    lazy_traits_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.irdl.constraints import VerificationContext
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from hetc.dialects.spec_fields import model_field, node_fields, spec_field
from hetc.model.arch import MODEL_KINDS, PRECISION_BYTES, ModelArch
from hetc.spec.rules import (
    ARCH_RULES,
    COMPUTE_OPS,
    EMBED_MODEL_KINDS,
    INPUT_PAYLOADS,
    KB,
    KV_CACHE_MODEL_KINDS,
    KV_PLACEMENTS,
    MAX_AUDIO_S,
    MAX_BYTES,
    MAX_DIM,
    MAX_ITERATIONS,
    MAX_MS,
    MAX_RPS,
    MAX_TOP_K,
    MAX_VECTORS,
    MS,
    PRECISIONS,
    REQUIRED,
    TOKENS,
    VECTOR_INDEXES,
    FieldRule,
    Limit,
    arch_problems,
)

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


@functools.cache
def _field_rules(op_type: type[IRDLOperation]) -> dict[str | None, FieldRule]:
    return dict(node_fields(op_type))


def _check_fields(op: IRDLOperation) -> None:
    """Every number and choice of a node op against the rule of its spec field."""
    rules = _field_rules(type(op)) if getattr(op, "SPEC_KIND", "") else {}
    where = f"{op.name} @{op.sym_name.data}"
    for name, attr in op.properties.items():
        rule = rules.get(name)
        if isinstance(attr, (IntegerAttr, FloatAttr)):
            allow_zero = rule is None or rule.allow_zero or rule.type == "bool"
            check_number(where, name, attr.value.data, allow_zero, rule.limit if rule else None)
        elif isinstance(attr, StringAttr) and rule is not None and rule.choices and attr.data not in rule.choices:
            raise VerifyException(f"{where}: {name} must be one of {'|'.join(rule.choices)}, got {attr.data!r}")


def parse_named_values(parser: AttrParser, what: str, parse_value: Callable[[], object]) -> dict[str, object]:
    """An attribute's `<name = value, ...>`, each name at most once."""
    values: dict[str, object] = {}

    def entry() -> None:
        pos = parser.pos
        key = parser.parse_identifier()
        parser.parse_punctuation("=")
        if key in values:
            parser.raise_error(f"{what}: {key} given twice", pos)
        values[key] = parse_value()

    parser.parse_comma_separated_list(parser.Delimiter.ANGLE, entry)
    return values


@irdl_attr_definition
class ArchAttr(ParametrizedAttribute):
    """#agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, ..., tied_embeddings = false>: a model's
    architecture, each field one of hetc.model.models.ModelArch's, typed and limited by the spec loader's rule for
    it (ARCH_RULES): integers, booleans (true/false) and strings. Fields left out take ModelArch's defaults."""

    name = "agent.arch"
    fields: DictionaryAttr  # field name -> IntegerAttr (i64; booleans 0/1) | StringAttr

    def __init__(self, values: dict[str, int | bool | str] | DictionaryAttr):
        def attr(value):
            if isinstance(value, Attribute):
                return value
            return StringAttr(value) if isinstance(value, str) else IntegerAttr(int(value), 64)

        items = values.data.items() if isinstance(values, DictionaryAttr) else values.items()
        super().__init__(DictionaryAttr({k: attr(v) for k, v in items}))

    @property
    def data(self) -> dict[str, Attribute]:
        """The fields as builtin attributes by name (as the dictionary it replaces held them)."""
        return self.fields.data

    def values(self) -> dict[str, int | bool | str]:
        out: dict[str, int | bool | str] = {}
        for key, attr in self.fields.data.items():
            if isinstance(attr, StringAttr):
                out[key] = attr.data
            else:
                out[key] = bool(attr.value.data) if ARCH_RULES[key].type == "bool" else attr.value.data
        return out

    def model_arch(self, name: str) -> ModelArch:
        """The architecture as the cost model takes it; `name` (the agent.model symbol) where it names none."""
        return ModelArch(**{"name": name, **self.values()})

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        def value() -> Attribute:
            if (text := parser.parse_optional_str_literal()) is not None:
                return StringAttr(text)
            if parser.parse_optional_keyword("true") is not None:
                return IntegerAttr(1, 64)
            if parser.parse_optional_keyword("false") is not None:
                return IntegerAttr(0, 64)
            return IntegerAttr(parser.parse_integer(), 64)

        return [DictionaryAttr(parse_named_values(parser, "agent.arch", value))]

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            for index, (key, attr) in enumerate(self.fields.data.items()):
                printer.print_string(f"{', ' if index else ''}{key} = ")
                if isinstance(attr, StringAttr):
                    printer.print_string_literal(attr.data)
                elif ARCH_RULES.get(key) is not None and ARCH_RULES[key].type == "bool":
                    printer.print_string("true" if attr.value.data else "false")
                else:
                    printer.print_string(str(attr.value.data))

    def verify(self) -> None:
        """Each field against the spec loader's rule for it: known, of its type, within its limit."""
        for key, attr in self.fields.data.items():
            rule = ARCH_RULES.get(key)
            if rule is None:
                raise VerifyException(f"agent.arch: unknown field '{key}'")
            if rule.type in ("int", "bool"):
                if not isinstance(attr, IntegerAttr):
                    raise VerifyException(f"agent.arch: {key} must be {'an integer' if rule.type == 'int' else 'true or false'}")
                value = attr.value.data
                if rule.type == "bool" and value not in (0, 1):
                    raise VerifyException(f"agent.arch: {key} must be true or false, got {value}")
                check_number("agent.arch", key, value, rule.allow_zero or rule.type == "bool", rule.limit)
            else:
                if not isinstance(attr, StringAttr):
                    raise VerifyException(f"agent.arch: {key} must be a string")
                if rule.choices and attr.data not in rule.choices:
                    raise VerifyException(f"agent.arch: {key} must be one of {'|'.join(rule.choices)}, "
                                          f"got {attr.data!r}")


@dataclass(frozen=True)
class Payload(AttrConstraint):
    """An operand's declared type: one of a node kind's accepted payloads (its ACCEPTED_INPUTS)."""

    types: tuple[type[PayloadType], ...]

    def verify(self, attr: Attribute, constraint_context: VerificationContext) -> None:
        if not isinstance(attr, self.types):
            names = ", ".join(f"!{t.name}" for t in self.types)
            raise VerifyException(f"input of type {attr} is not accepted; expected {names}")

    def get_bases(self) -> set[type[Attribute]]:
        return set(self.types)

    def mapping_type_vars(self, type_var_mapping) -> Payload:
        return self


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
    # The spec node kind (docs/spec.md) this op is; its fields are the op's spec_field properties, in order,
    # after SPEC_EXTRA_FIELDS (fields that are not properties). SPEC_DOC introduces the kind in docs/spec.md.
    SPEC_KIND: ClassVar[str] = ""
    SPEC_EXTRA_FIELDS: ClassVar[tuple[FieldRule, ...]] = ()
    SPEC_DOC: ClassVar[str] = ""
    SPEC_NOTES: ClassVar[str] = ""  # shown below the kind's table

    def node_id(self) -> str:
        return self.sym_name.data

    def verify_(self) -> None:
        if len(self.inputs) < self.MIN_INPUTS:
            raise VerifyException(f"{self.name} @{self.sym_name.data}: expected at least {self.MIN_INPUTS} input(s)")
        _check_fields(self)

    @classmethod
    def spec_payload(cls, attrs: Mapping[str, Any]) -> str | None:
        """The payload a node of this kind produces, given its spec fields: the one its result type names;
        None when the result may be any payload (the node passes on what its first input brings)."""
        return _result_payload(cls)


@functools.cache
def _result_payload(op_type: type[IRDLOperation]) -> str | None:
    """The payload the op's single result type names (None: any payload, or no result)."""
    results = op_type.get_irdl_definition().results
    constraint = getattr(getattr(results[0][1].constr, "constraint", None), "constr", None) if results else None
    result_type = getattr(constraint, "attr", None)
    concrete = isinstance(result_type, type) and issubclass(result_type, PayloadType) and result_type.PAYLOAD
    return result_type.PAYLOAD if concrete else None


class ModelNodeOp(NodeOp):
    model = model_field(MODEL_KINDS, "the model the node runs")

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
    arch = prop_def(ArchAttr)
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
        for _, message in arch_problems(self.arch.model_arch(self.sym_name.data)):
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
    SPEC_DOC: ClassVar[str] = "Where a request enters the graph. No incoming edges."
    SPEC_EXTRA_FIELDS: ClassVar[tuple[FieldRule, ...]] = (  # the result type
        FieldRule("produces", "choice", default="text", choices=INPUT_PAYLOADS, doc="payload type"),)
    result = result_def(PayloadType)
    tokens = spec_field("int", optional=True, default=64, **TOKENS,
                        doc="payload size (not for `audio` or `embedding`)")
    audio_seconds = spec_field("number", optional=True, unit="seconds", default=10.0, limit=MAX_AUDIO_S,
                               doc="length of the audio (only for `produces: audio`)")
    dim = spec_field("int", optional=True, unit="vector elements", default=1024, limit=MAX_DIM,
                     doc="vector length (only for `produces: embedding`)")
    payload_bytes = spec_field(
        "int", "bytes", optional=True, unit="bytes", limit=MAX_BYTES, default_doc="derived",
        doc="payload bytes; derived: 4 bytes per text token (about 4 characters of English per BPE token), 4 bytes "
            "per token id, 32,000 bytes per audio second (16 kHz 16-bit mono PCM, Whisper's input), 4 bytes per "
            "embedding element (fp32)")
    SPEC_NOTES: ClassVar[str] = "`attrs` holds `produces`, `bytes` and the size field that applies (`tokens`, " \
                                "`audio_seconds` or `dim`)."
    MIN_INPUTS: ClassVar[int] = 0

    @classmethod
    def spec_payload(cls, attrs: Mapping[str, Any]) -> str | None:
        return attrs["produces"]


@irdl_op_definition
class OutputOp(NodeOp):
    name = "agent.output"
    SPEC_KIND: ClassVar[str] = "output"
    SPEC_DOC: ClassVar[str] = "Where a result leaves the graph. No outgoing edges, no fields besides `description`."
    assembly_format = "$sym_name `(` $inputs `)` attr-dict `:` type($inputs)"


@irdl_op_definition
class LLMOp(ModelNodeOp):
    name = "agent.llm"
    SPEC_KIND: ClassVar[str] = "llm"
    SPEC_DOC: ClassVar[str] = "A decoder language model call: prefill of the input, then decode of the output."
    result = result_def(TextType)
    model = model_field(("decoder",), "the language model")
    input_tokens = spec_field("int", default=512, **TOKENS, in_context=True, doc="prompt length")
    output_tokens = spec_field("int", default=256, **TOKENS, in_context=True, doc="tokens generated")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = _LLM_INPUTS
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class SpeechToTextOp(ModelNodeOp):
    name = "agent.speech_to_text"
    SPEC_KIND: ClassVar[str] = "speech_to_text"
    SPEC_DOC: ClassVar[str] = "Speech recognition: audio in, text out."
    result = result_def(TextType)
    model = model_field(("encoder_decoder",), "the speech recognition model")
    audio_seconds = spec_field("number", unit="seconds", limit=MAX_AUDIO_S, doc="length of the audio transcribed",
                               default_doc="the largest `audio_seconds` of the audio `input` nodes feeding it "
                                           "directly, else 10")
    output_tokens = spec_field("int", default=64, **TOKENS, in_context=True, doc="tokens of text produced")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (AudioType,)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class TextToSpeechOp(ModelNodeOp):
    name = "agent.text_to_speech"
    SPEC_KIND: ClassVar[str] = "text_to_speech"
    SPEC_DOC: ClassVar[str] = "Speech synthesis: text in, audio out."
    result = result_def(AudioType)
    model = model_field(("tts",), "the speech synthesis model")
    input_tokens = spec_field("int", default=128, **TOKENS, in_context=True, doc="tokens of text spoken")
    audio_seconds = spec_field("number", unit="seconds", default=10.0, limit=MAX_AUDIO_S, doc="audio produced")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, JsonType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class EmbeddingOp(ModelNodeOp):
    name = "agent.embedding"
    SPEC_KIND: ClassVar[str] = "embedding"
    SPEC_DOC: ClassVar[str] = "Text to a vector with an encoder model."
    result = result_def(EmbeddingType)
    model = model_field(EMBED_MODEL_KINDS, "the embedding model")
    tokens = spec_field("int", default=256, **TOKENS, in_context=True, doc="tokens embedded")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, DocumentsType, JsonType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


@irdl_op_definition
class ModelCallOp(ModelNodeOp):
    """Generic model execution (encoder only when output_tokens = 0)."""

    name = "agent.model_call"
    SPEC_KIND: ClassVar[str] = "model"
    SPEC_DOC: ClassVar[str] = "Generic model execution (a classifier, a reward model, a guard, ...)."
    result = result_def(PayloadType)
    model = model_field(MODEL_KINDS, "the model (any kind)")
    input_tokens = spec_field("int", default=512, **TOKENS, in_context=True, doc="tokens in")
    output_tokens = spec_field("int", default=0, allow_zero=True, **TOKENS, in_context=True,
                               doc="tokens generated; 0 = prefill / encoder only (an encoder model must have 0)")

    @classmethod
    def spec_payload(cls, attrs: Mapping[str, Any]) -> str | None:
        return "text" if attrs["output_tokens"] > 0 else "embedding"


@irdl_op_definition
class KVCacheOp(ModelNodeOp):
    name = "agent.kv_cache"
    SPEC_KIND: ClassVar[str] = "kv_cache"
    SPEC_DOC: ClassVar[str] = "A model's KV cache held between steps or requests (e.g. a conversation prefix)."
    result = result_def(KVType)
    model = model_field(KV_CACHE_MODEL_KINDS, "the model whose cache it is")
    tokens = spec_field("int", default=2048, **TOKENS, in_context=True, doc="cached context")
    store = spec_field("choice", "placement", default="local", choices=KV_PLACEMENTS, doc="where the cache lives")


@irdl_op_definition
class ToolOp(NodeOp):
    """An external tool call: a network round trip plus optional local CPU processing."""

    name = "agent.tool"
    SPEC_KIND: ClassVar[str] = "tool"
    SPEC_DOC: ClassVar[str] = "A call to an external service (web search, sandbox, HTTP API)."
    result = result_def(DocumentsType)
    tool = spec_field("string", default_doc="the node id", doc="the tool's name")
    latency_ms = spec_field("number", default=REQUIRED, **MS, doc="the service's typical round trip")
    latency_p99_ms = spec_field("number", optional=True, **MS, default_doc="= `latency_ms`",
                                doc="the round trip's p99; >= `latency_ms`")
    compute_ms = spec_field("number", default=0.0, allow_zero=True, **MS, doc="local CPU work per call (one core)")
    request_kb = spec_field("number", default=1.0, allow_zero=True, **KB, doc="bytes sent")
    response_kb = spec_field("number", default=4.0, allow_zero=True, **KB, doc="bytes received")

    def verify_(self) -> None:
        super().verify_()
        if self.latency_p99_ms is not None and self.latency_p99_ms.value.data < self.latency_ms.value.data:
            raise VerifyException(f"agent.tool @{self.node_id()}: latency_p99_ms is below latency_ms")


@irdl_op_definition
class MemoryLookupOp(NodeOp):
    """Retrieval from a vector store; with `embed_model`, the query is embedded first."""

    name = "agent.memory_lookup"
    SPEC_KIND: ClassVar[str] = "memory_lookup"
    SPEC_DOC: ClassVar[str] = "A vector-database search (FAISS, pgvector, ...)."
    SPEC_NOTES: ClassVar[str] = "`attrs[\"embed_model\"]` and `attrs[\"rerank_model\"]` hold the ids or `None`."
    result = result_def(DocumentsType)
    n_vectors = spec_field("int", default=REQUIRED, unit="vectors", limit=MAX_VECTORS, doc="index size")
    dim = spec_field("int", unit="vector elements", limit=MAX_DIM, default_doc="`embed_model`'s `d_model`",
                     doc="vector length; required without `embed_model`, must match it with one")
    precision = spec_field("choice", default="fp32", choices=PRECISIONS, doc="stored vector precision")
    index = spec_field("choice", default="flat", choices=VECTOR_INDEXES, doc="exhaustive scan or HNSW graph index")
    top_k = spec_field("int", unit="results", default=10, limit=MAX_TOP_K, doc="results returned; <= `n_vectors`")
    query_tokens = spec_field("int", default=64, **TOKENS, in_context=True,
                              doc="query text embedded by `embed_model`")
    embed_model = spec_field("model", optional=True, default=None, model_kinds=EMBED_MODEL_KINDS,
                             doc="when given, the lookup embeds the query first (`Node.model` is this model)")
    rerank_model = spec_field("model", optional=True, default=None, doc="a model that rescores the `top_k` results")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, EmbeddingType, JsonType, DocumentsType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes

    def verify_(self) -> None:
        super().verify_()
        if self.top_k.value.data > self.n_vectors.value.data:
            raise VerifyException(f"agent.memory_lookup @{self.node_id()}: top_k is larger than n_vectors")


@irdl_op_definition
class MemoryStoreOp(NodeOp):
    name = "agent.memory_store"
    SPEC_KIND: ClassVar[str] = "memory_store"
    SPEC_DOC: ClassVar[str] = "Writing to a vector store / episodic memory (the paper's observation store)."
    result = result_def(JsonType)
    n_vectors = spec_field("int", unit="vectors", default=1, limit=MAX_VECTORS, doc="vectors written per call")
    dim = spec_field("int", unit="vector elements", limit=MAX_DIM, default_doc="`embed_model`'s `d_model`",
                     doc="as for `memory_lookup`")
    precision = spec_field("choice", default="fp32", choices=PRECISIONS, doc="stored vector precision")
    tokens = spec_field("int", default=64, **TOKENS, in_context=True, doc="text embedded per call by `embed_model`")
    embed_model = spec_field("model", optional=True, default=None, model_kinds=EMBED_MODEL_KINDS,
                             doc="embeds before storing (`Node.model`)")
    latency_ms = spec_field("number", default=2.0, allow_zero=True, **MS, doc="the store's write latency")


@irdl_op_definition
class ComputeOp(NodeOp):
    """General-purpose CPU work (parsing, routing, filtering): cpu_ms on one core per invocation."""

    name = "agent.compute"
    SPEC_KIND: ClassVar[str] = "compute"
    SPEC_DOC: ClassVar[str] = "General-purpose CPU work: parsing, routing, filtering."
    result = result_def(PayloadType)
    cpu_ms = spec_field("number", default=REQUIRED, **MS, doc="work per invocation on one CPU core")
    kernel = spec_field("choice", "op", optional=True, default="none", choices=COMPUTE_OPS,
                        doc="a kernel the code generator may emit for this step")


@irdl_op_definition
class GuardrailOp(ModelNodeOp):
    """A safety classifier (e.g. Llama Guard 3) screens the text and passes it on or blocks it; the share it
    blocks is the probability on its out-edge (a blocked request goes no further)."""

    name = "agent.guardrail"
    SPEC_KIND: ClassVar[str] = "guardrail"
    SPEC_DOC: ClassVar[str] = (
        "A safety classifier (for example Llama Guard 3: presets `llama-guard-3-1b`, `llama-guard-3-8b`) screens "
        "the text and passes it on or blocks it; the share it blocks is the `probability` of its out-edge. Placed "
        "and priced as one batched pass of its model; hetc's runtime does not call the classifier yet (a deployed "
        "guardrail stage passes its input on).")
    result = result_def(TextType)
    model = model_field(("decoder",), "the classifier model")
    input_tokens = spec_field("int", default=512, **TOKENS, in_context=True,
                              doc="the text plus the classifier's policy prompt")
    output_tokens = spec_field("int", default=8, **TOKENS, in_context=True,
                               doc="the verdict: `safe`, or `unsafe` and the violated categories")
    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = (TextType, TokensType, DocumentsType, JsonType)
    inputs = var_operand_def(Payload(ACCEPTED_INPUTS))  # the payloads this node kind takes


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
    SPEC_KIND: ClassVar[str] = "agent"
    SPEC_DOC: ClassVar[str] = (
        "A nested agent: a node whose work is a whole graph. Edges into the node feed the subgraph's inputs;\n"
        "its outputs feed the node's outgoing edges.")
    SPEC_EXTRA_FIELDS: ClassVar[tuple[FieldRule, ...]] = (  # the callee
        FieldRule("graph", "graph", type_doc="mapping `{nodes: ..., edges: ...}`", default_doc="-",
                  doc="an inline subgraph, same rules as the top level"),
        FieldRule("file", "string", type_doc="path", default_doc="-",
                  doc="an agent file, relative to the file that names it"))
    callee = prop_def(SymbolRefAttr)
    outs = var_result_def(PayloadType)
    plan_as_unit = spec_field("bool", optional=True, default=False,
                              doc="place the whole subgraph as one unit instead of op by op")
    SPEC_NOTES: ClassVar[str] = (
        "Exactly one of `graph` and `file`. `Node.subgraph` holds the subgraph (`hetc.spec.Graph`); `attrs` holds\n"
        "`plan_as_unit`, `file` (the included path as shown in diagnostics, `\"\"` for inline) and `agent_name` (the\n"
        "agent file's `name`, or the node id). An **agent file** is a spec file with only `hetc`, `name`,\n"
        "`description`, `models`, `nodes` and `edges`: `slo`, `traffic` and `hardware` belong to the top-level\n"
        "spec. Agent files may include other agent files; an include cycle is an error.")
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
    [TextType, TokensType, AudioType, EmbeddingType, DocumentsType, KVType, JsonType, ArchAttr],
)
