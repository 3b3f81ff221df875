"""Small helpers shared by the passes: building task ops that keep their node's name and location, and the
reports passes hand to the compile driver."""

from __future__ import annotations

import weakref

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


# What a pass finds beyond the IR it rewrites (place: the plan's cost, paths, edges, baselines), kept beside
# the module it was found for and dropped with it. Plan-wide results go to plan.json through the compile
# driver, not into the IR: as an attribute they were a third of a large graph's IR.
_PASS_REPORTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def record_pass_report(module, pass_name: str, report: object) -> None:
    _PASS_REPORTS.setdefault(module, {})[pass_name] = report


def pass_report(module, pass_name: str):
    """What `pass_name` reported on its last run on `module`, or None (it did not run on it)."""
    return _PASS_REPORTS.get(module, {}).get(pass_name)
