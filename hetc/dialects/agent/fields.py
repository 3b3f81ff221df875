"""What the `agent` and `task` verifiers check every number and choice against: finiteness, sign and the spec
loader's limit for the field (check_number), a node op's properties against its spec_field rules
(check_fields), and the `<name = value, ...>` syntax of the dialects' attributes (parse_named_values)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr
from xdsl.irdl import IRDLOperation
from xdsl.parser import AttrParser
from xdsl.utils.exceptions import VerifyException

from hetc.dialects.spec_fields import node_fields
from hetc.spec.rules import FieldRule, Limit


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


def check_fields(op: IRDLOperation) -> None:
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
