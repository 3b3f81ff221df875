"""Spec fields declared on `agent` ops: the op is the one place a node kind's field is written.

`spec_field(...)` declares a property that is also a field of the op's spec node kind, with its FieldRule
(type, unit, limit, default, meaning); `node_fields(op)` lists a kind's fields in spec order. The spec loader
(hetc.spec.fields), the frontend, the op verifiers and docs/spec.md's tables all read them from here.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from xdsl.dialects.builtin import I64, FloatAttr, IntegerAttr, StringAttr, SymbolRefAttr, f64, i64
from xdsl.irdl import IRDLOperation, OptPropertyDef, PropertyDef
from xdsl.irdl.operations import _PropertyFieldDef

from hetc.spec.rules import REQUIRED, FieldRule

# The IR type of each spec field type
_PROPERTY_TYPES = {"int": IntegerAttr[I64], "bool": IntegerAttr[I64], "number": FloatAttr, "string": StringAttr,
                   "choice": StringAttr, "model": SymbolRefAttr}


class SpecField(_PropertyFieldDef):
    """A property that is also a field of the op's spec node kind (docs/spec.md): the op is the one place
    where the field's name, type, unit, limit, default and meaning are written. The spec loader reads these
    rules (hetc.spec.fields), the frontend emits the property from the loaded value, the verifier checks
    hand-written IR against the same rule, and docs/spec.md's tables are generated from it."""

    def __init__(self, rule: FieldRule, optional: bool):
        super().__init__(OptPropertyDef if optional else PropertyDef, _PROPERTY_TYPES[rule.type], None, None)
        self.rule = rule

    def __set_name__(self, owner: type, name: str) -> None:
        rule = self.rule if self.rule.name else replace(self.rule, name=name)
        if "__spec_fields__" not in vars(owner):
            owner.__spec_fields__ = []  # a dunder name: irdl_op_definition skips it
        owner.__spec_fields__.append((name, rule))


def spec_field(type_: str, key: str = "", *, optional: bool = False, **rule) -> Any:
    """A property holding spec field `key` (default: the property's name) of `type_` (FieldRule.type).
    `optional`: the property may be absent in the IR (the field has no value, e.g. an unset model)."""
    return SpecField(FieldRule(key, type_, **rule), optional)


def model_field(kinds: tuple[str, ...], doc: str) -> Any:
    return spec_field("model", default=REQUIRED, model_kinds=kinds, doc=doc)


# properties of node ops that are not spec fields
_STRUCTURAL_PROPERTIES = ("sym_name", "callee")


@functools.cache
def node_fields(op_type: type[IRDLOperation]) -> tuple[tuple[str | None, FieldRule], ...]:
    """The fields of an op's spec node kind in spec order: (the property holding it, or None for a field that
    is not a property, its rule). A property declared with a plain prop_def gets a rule from its type alone
    (required unless optional, no unit or limit), so a new op is a spec node kind at once; spec_field says
    the rest."""
    fields: dict[str | None, FieldRule] = {}
    for klass in reversed(op_type.__mro__):  # base classes first; a subclass redefines a field in place
        fields.update(vars(klass).get("__spec_fields__", ()))
    for name, prop in op_type.get_irdl_definition().properties.items():
        if name not in fields and name not in _STRUCTURAL_PROPERTIES:
            fields[name] = _rule_from_property(name, prop)
    extra = [(None, rule) for rule in getattr(op_type, "SPEC_EXTRA_FIELDS", ())]
    return (*extra, *fields.items())


def _rule_from_property(name: str, prop: PropertyDef) -> FieldRule:
    samples = (("int", IntegerAttr(1, i64)), ("number", FloatAttr(1.0, f64)), ("model", SymbolRefAttr("m")),
               ("string", StringAttr("s")))
    type_ = next((t for t, sample in samples if prop.constr.verifies(sample)), "string")
    return FieldRule(name, type_, default=None if isinstance(prop, OptPropertyDef) else REQUIRED)
