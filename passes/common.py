"""Small helpers shared by the passes: building task ops that keep their node's name and location."""

from __future__ import annotations

from xdsl.dialects.builtin import Float64Type, FloatAttr, IntegerAttr, StringAttr
from xdsl.dialects.builtin import i64 as I64_TYPE
from xdsl.ir import Attribute, Operation, SSAValue


def i64(value: int) -> IntegerAttr:
    return IntegerAttr(int(value), I64_TYPE)


def f64(value: float) -> FloatAttr:
    return FloatAttr(float(value), Float64Type())


def task(cls: type[Operation], source: Operation, suffix: str, inputs: list[SSAValue], result_type: Attribute,
         **props: Attribute) -> Operation:
    """A task op named `<source>.<suffix>` (or `<source>`) that remembers its spec node and location."""
    base = source.sym_name.data
    name = f"{base}.{suffix}" if suffix else base
    node = source.node.data if "node" in source.properties else base
    op = cls.build(operands=[inputs], result_types=[result_type],
                   properties={"sym_name": StringAttr(name), "node": StringAttr(node), **props})
    op.location = source.location
    for key, value in source.attributes.items():  # hetc.* annotations (e.g. hetc.unit) follow the node
        if key.startswith("hetc."):
            op.attributes[key] = value
    return op
