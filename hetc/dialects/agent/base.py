"""The common shape of a graph node op (NodeOp: symbol name, typed inputs, its spec kind and fields) and of a
node that runs a model (ModelNodeOp: its `model` names an agent.model)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from xdsl.dialects.builtin import SymbolNameConstraint
from xdsl.irdl import IRDLOperation, ParsePropInAttrDict, prop_def, var_operand_def
from xdsl.utils.exceptions import VerifyException

from hetc.dialects.agent.fields import check_fields
from hetc.dialects.agent.models import ModelOp
from hetc.dialects.agent.payloads import ANY_PAYLOAD, PayloadType
from hetc.dialects.spec_fields import model_field
from hetc.dialects.trait_lookup import MemoisedTraits
from hetc.model.arch import MODEL_KINDS
from hetc.spec.rules import FieldRule

_NODE_FORMAT = "$sym_name `(` $inputs `)` attr-dict `:` functional-type($inputs, results)"


class NodeOp(MemoisedTraits, IRDLOperation):
    """Common shape of a graph node: symbol name, typed inputs, attributes in the attr dict."""

    sym_name = prop_def(SymbolNameConstraint())
    inputs = var_operand_def(PayloadType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = _NODE_FORMAT

    ACCEPTED_INPUTS: ClassVar[tuple[type[PayloadType], ...]] = ANY_PAYLOAD
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
        check_fields(self)

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
