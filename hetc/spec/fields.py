"""The spec's node kinds and their fields, read from the `agent` ops that define them (hetc/dialects/agent/).

Each node op names its spec kind (SPEC_KIND) and declares the kind's fields as properties (spec_field): type,
unit, limit, default and meaning. The loader checks a node against these rules, the frontend emits the op's
properties from them, and docs/spec.md's tables are generated from them (hetc.spec.schema_doc), so a new op
is a new node kind with nothing else to edit.
"""

from __future__ import annotations

from hetc.dialects.agent import Agent, NodeOp
from hetc.dialects.spec_fields import node_fields
from hetc.spec.rules import FieldRule

# spec kind -> the op a node of that kind becomes, in the dialect's order (the order errors list kinds in)
NODE_OPS: dict[str, type[NodeOp]] = {
    op.SPEC_KIND: op for op in Agent.operations if issubclass(op, NodeOp) and op.SPEC_KIND
}
NODE_KINDS = tuple(NODE_OPS)

# spec kind -> its fields besides `kind` and `description` (common to all kinds), in Node.attrs order
NODE_FIELDS: dict[str, tuple[FieldRule, ...]] = {
    kind: tuple(rule for _, rule in node_fields(op)) for kind, op in NODE_OPS.items()
}
