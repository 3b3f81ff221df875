"""Reading one YAML value against its FieldRule: keys of a mapping (unknown, duplicate, missing, with "did you
mean" and unit hints), numbers with their range and limit, strings, choices, booleans and model ids. Every
problem becomes a located Diagnostic; the caller goes on, so one run reports every error of a spec.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hetc.errors import Diagnostic, Loc
from hetc.spec import ModelRef
from hetc.spec.rules import FieldRule
from hetc.spec.yaml_source import YamlMap, YamlNode, YamlScalar

# key suffix -> (unit family, factor to the family's base unit)
_KEY_UNITS = {
    "_ms": ("time", 1e-3), "_s": ("time", 1.0), "_sec": ("time", 1.0), "_secs": ("time", 1.0),
    "_seconds": ("time", 1.0), "_us": ("time", 1e-6), "_min": ("time", 60.0), "_minutes": ("time", 60.0),
    "_kb": ("size", 1e3), "_mb": ("size", 1e6), "_gb": ("size", 1e9), "_bytes": ("size", 1.0),
    "_b": ("size", 1.0),
}
_UNIT_WORDS = {"milliseconds": ("time", 1e-3), "seconds": ("time", 1.0), "kilobytes": ("size", 1e3)}
_VALUE_UNITS = {
    "ms": ("time", 1e-3), "s": ("time", 1.0), "sec": ("time", 1.0), "secs": ("time", 1.0),
    "seconds": ("time", 1.0), "us": ("time", 1e-6), "min": ("time", 60.0),
    "kb": ("size", 1e3), "mb": ("size", 1e6), "gb": ("size", 1e9), "b": ("size", 1.0), "bytes": ("size", 1.0),
}
_NUMBER_WITH_UNIT = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)\s*$")
# YAML 1.2 numbers PyYAML (YAML 1.1) reads as strings, e.g. 1e6
_YAML12_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def split_unit_key(key: str) -> tuple[str, tuple[str, float] | None]:
    for suffix in sorted(_KEY_UNITS, key=len, reverse=True):
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], _KEY_UNITS[suffix]
    return key, None


def _close(word: str, options: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if not matches:
        lowered = {o.lower(): o for o in options}
        matches = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return matches[0] if matches else None


def did_you_mean(word: str, options: Sequence[str]) -> str:
    match = _close(word, options)
    return f"; did you mean '{match}'?" if match else ""


def with_article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


class ValueReader:
    """Checks values and collects diagnostics (the base of the spec loader)."""

    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []
        self.invalid_models: set[str] = set()  # declared but invalid (already reported): no cascades

    def error(self, loc: Loc, message: str) -> None:
        self.diags.append(Diagnostic(loc, message))

    # ---- mappings and keys ----

    def keys(self, ymap: YamlMap, context: str, allowed: Sequence[str], required: Sequence[str] = (),
             rules: Mapping[str, FieldRule] | None = None) -> dict[str, tuple[YamlScalar, YamlNode]]:
        """The allowed entries of a mapping; reports duplicates, unknown keys and missing required keys."""
        for key, loc, first in ymap.duplicates:
            self.error(loc, f"duplicate key '{key}' {context} (first at line {first.line})")
        found: dict[str, tuple[YamlScalar, YamlNode]] = {}
        suggested: set[str] = set()
        for key, (key_node, value) in ymap.entries.items():
            if key in allowed:
                found[key] = (key_node, value)
            else:
                message, suggestion = self._unknown_key(key, value, context, allowed, rules)
                self.error(key_node.loc, message)
                suggested.add(suggestion)
        for key in required:
            if key not in found and key not in suggested:  # a misspelt key already says what to write
                self.error(ymap.loc, f"missing required key '{key}' {context}")
        return found

    def _unknown_key(self, key: str, value: YamlNode, context: str, allowed: Sequence[str],
                     rules: Mapping[str, FieldRule] | None) -> tuple[str, str]:
        """The message and the suggested key ("" when none)."""
        head = f"unknown key '{key}' {context}"
        stem, unit = split_unit_key(key)
        for option in allowed:  # a known field written with another unit (latency_s, latency)
            option_stem, option_unit = split_unit_key(option)
            if option_stem != stem or option == key:
                continue
            if option_unit is None and rules is not None and option in rules:
                option_unit = _UNIT_WORDS.get(rules[option].unit)
            number = value.value if isinstance(value, YamlScalar) else None
            if (unit and option_unit and unit[0] == option_unit[0] and isinstance(number, (int, float))
                    and not isinstance(number, bool) and math.isfinite(number)):
                converted = number * unit[1] / option_unit[1]
                return (f"{head}; did you mean '{option}: {fmt(converted)}'? (the unit is part of the name)",
                        option)
            return f"{head}; did you mean '{option}'? (the unit is part of the name)", option
        match = _close(key, allowed)
        if match:
            return f"{head}; did you mean '{match}'?", match
        return f"{head}; expected one of: {', '.join(sorted(allowed))}", ""

    def mapping(self, node: YamlNode | None, what: str) -> YamlMap | None:
        if isinstance(node, YamlMap):
            return node
        if node is not None:
            self.error(node.loc, f"{what} must be a mapping (key: value), got {node.describe()}")
        return None

    # ---- scalar values ----

    def number(self, node: YamlNode, rule: FieldRule, integer: bool | None = None) -> float | int | None:
        integer = rule.type == "int" if integer is None else integer
        sign = "a non-negative" if rule.allow_zero else "a positive"
        expected = f"{sign} {'integer' if integer else 'number'}" + (f" ({rule.unit})" if rule.unit else "")
        if not isinstance(node, YamlScalar):
            self.error(node.loc, f"expected {expected}, got {node.describe()}")
            return None
        value = node.value
        if isinstance(value, str) and not node.quoted and _YAML12_NUMBER.match(value):
            value = float(value)  # 1e6: a number in YAML 1.2, a string to PyYAML
        if isinstance(value, bool) or value is None or isinstance(value, str):
            self.error(node.loc, f"expected {expected}, got {node.describe()}{self._unit_hint(node, rule)}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.error(node.loc, f"expected {expected}, got {node.text} (not a finite number)")
            return None
        if integer and isinstance(value, float):
            if not value.is_integer():
                self.error(node.loc, f"expected {expected}, got {node.text} (not a whole number)")
                return None
            value = int(value)
        if value < 0 or (value == 0 and not rule.allow_zero):
            self.error(node.loc, f"expected {expected}, got {node.text}")
            return None
        if rule.limit is not None and value > rule.limit.maximum:
            self.error(node.loc, f"{node.text} is too large for '{rule.name}': at most "
                                 f"{fmt(rule.limit.maximum)} ({rule.limit.reason})")
            return None
        return int(value) if integer else float(value)

    @staticmethod
    def _unit_hint(node: YamlScalar, rule: FieldRule) -> str:
        match = _NUMBER_WITH_UNIT.match(node.text) if isinstance(node.value, str) else None
        target = _UNIT_WORDS.get(rule.unit)
        if not match or not target:
            return ""
        unit = _VALUE_UNITS.get(match.group(2).lower())
        if unit is None or unit[0] != target[0]:
            return ""
        converted = float(match.group(1)) * unit[1] / target[1]
        return f"; the unit ({rule.unit}) is part of the key: write {fmt(converted)}"

    def string(self, node: YamlNode, what: str) -> str | None:
        if isinstance(node, YamlScalar) and node.value is not None and node.text.strip():
            return node.text  # `name: 2024-01-01` or `name: yes` mean the text as written
        shown = node.describe() if not isinstance(node, YamlScalar) or node.value is None else "an empty string"
        self.error(node.loc, f"expected {what} (a non-empty string), got {shown}")
        return None

    def text(self, node: YamlNode, what: str) -> str:
        """Free text that may be empty (descriptions)."""
        if isinstance(node, YamlScalar) and node.value is not None:
            return node.text
        self.error(node.loc, f"expected {what} (a string, may be empty), got {node.describe()}")
        return ""

    def choice(self, node: YamlNode, rule: FieldRule) -> str | None:
        if isinstance(node, YamlScalar) and isinstance(node.value, str) and node.value in rule.choices:
            return node.value
        options = "|".join(rule.choices)
        got = node.describe()
        hint = did_you_mean(node.text, rule.choices) if isinstance(node, YamlScalar) else ""
        self.error(node.loc, f"expected one of {options} for '{rule.name}', got {got}{hint}")
        return None

    def boolean(self, node: YamlNode, rule: FieldRule) -> bool | None:
        if isinstance(node, YamlScalar) and isinstance(node.value, bool):
            return node.value
        self.error(node.loc, f"expected true or false for '{rule.name}', got {node.describe()}")
        return None

    def value(self, node: YamlNode, rule: FieldRule, visible_models: Mapping[str, ModelRef]) -> Any:
        """Check one field; None when it is invalid (an error has been recorded)."""
        if rule.type in ("int", "number"):
            return self.number(node, rule)
        if rule.type == "string":
            return self.string(node, f"'{rule.name}'")
        if rule.type == "choice":
            return self.choice(node, rule)
        if rule.type == "bool":
            return self.boolean(node, rule)
        if rule.type == "model":
            return self.model_ref(node, rule, visible_models)
        return node  # "graph": checked by the agent node

    def model_ref(self, node: YamlNode, rule: FieldRule, visible: Mapping[str, ModelRef]) -> str | None:
        name = self.string(node, f"a model id for '{rule.name}'")
        if name is None:
            return None
        model = visible.get(name)
        if model is None and name in self.invalid_models:
            return None  # its definition's error is reported already
        if model is None:
            where = f"; models defined here: {', '.join(sorted(visible))}" if visible else "; no models are defined"
            hint = did_you_mean(name, sorted(visible))
            self.error(node.loc, f"unknown model '{name}' in '{rule.name}'{hint or where}")
            return None
        if model.arch.kind not in rule.model_kinds:
            self.error(node.loc, f"model '{name}' ({model.arch.name}) is {with_article(model.arch.kind)} model; "
                                 f"'{rule.name}' here needs {with_article(' or '.join(rule.model_kinds))} model")
            return None
        return name
