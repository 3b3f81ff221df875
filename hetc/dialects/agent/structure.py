"""The structure of an agent graph: agent.graph (a single-block region of node ops), its inputs and outputs,
conditional branches (agent.branch), nested agents (agent.call) and bounded loops (agent.loop and its
agent.loop_yield terminator)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from xdsl.ir import Attribute, Block, Region, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_op_definition,
    lazy_traits_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from hetc.dialects.agent.base import NodeOp
from hetc.dialects.agent.fields import check_number
from hetc.dialects.agent.payloads import PayloadType
from hetc.dialects.spec_fields import spec_field
from hetc.dialects.trait_lookup import MemoisedTraits
from hetc.spec.rules import INPUT_PAYLOADS, MAX_AUDIO_S, MAX_BYTES, MAX_DIM, MAX_ITERATIONS, MAX_MS, MAX_RPS, TOKENS, FieldRule


@irdl_op_definition
class GraphOp(MemoisedTraits, IRDLOperation):
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
class LoopYieldOp(MemoisedTraits, IRDLOperation):
    name = "agent.loop_yield"
    exits = var_operand_def(PayloadType)
    feedback = var_operand_def(PayloadType)
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(LoopOp)))
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = "`exits` `(` $exits `:` type($exits) `)` `feedback` `(` $feedback `:` type($feedback) `)` attr-dict"

    def __init__(self, exits: Sequence[SSAValue], feedback: Sequence[SSAValue]):
        super().__init__(operands=[list(exits), list(feedback)])
