"""docs/spec.md's field tables, generated from the rules the loader applies: one section per node kind from
its agent op (hetc.spec.fields), and the model architecture fields (hetc.spec.rules.ARCH_RULES).

    python -m hetc.spec.schema_doc            # exit 1 and say so when docs/spec.md is out of date
    python -m hetc.spec.schema_doc --write    # rewrite the generated parts of docs/spec.md

Each generated part sits between a `<!-- BEGIN generated: NAME ... -->` and an `<!-- END generated: NAME -->`
line; the prose around them is written by hand. tests/test_spec_docs.py checks docs/spec.md is current.
"""

from __future__ import annotations

import re
import sys
from dataclasses import MISSING
from dataclasses import fields as dc_fields
from pathlib import Path

from hetc.model.models import MODEL_KINDS, ModelArch
from hetc.spec.fields import NODE_FIELDS, NODE_OPS
from hetc.spec.rules import ABSENT, ARCH_RULES, PRECISIONS, REQUIRED, FieldRule
from hetc.spec.values import fmt

DOCS = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
REGENERATE = "python -m hetc.spec.schema_doc --write"


def type_text(rule: FieldRule) -> str:
    if rule.type_doc:
        return rule.type_doc
    sign = ">= 0" if rule.allow_zero else "> 0"
    if rule.type in ("int", "number"):
        return f"{rule.type} {sign}"
    if rule.type == "choice":
        return "a precision" if rule.choices == PRECISIONS else " ".join(f"`{c}`" if c else '`""`' for c in rule.choices)
    if rule.type == "model":
        return "model id (any kind)" if rule.model_kinds == MODEL_KINDS else f"model id ({' or '.join(rule.model_kinds)})"
    return rule.type


def default_text(rule: FieldRule, default=ABSENT) -> str:
    value = rule.default if default is ABSENT else default
    if rule.default_doc:
        return rule.default_doc
    if value is REQUIRED:
        return "required"
    if value is ABSENT or value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return fmt(value)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def node_kinds_markdown() -> str:
    """One `### kind` section per node kind: its op's SPEC_DOC, the table of its fields, the notes."""
    sections = []
    for kind, op in NODE_OPS.items():
        rules = NODE_FIELDS[kind]
        lines = [f"### `{kind}`", op.SPEC_DOC]
        if rules:
            lines += ["", _row(["key", "type", "unit", "default", "meaning"]), "|---|---|---|---|---|"]
            lines += [_row([f"`{r.name}`", type_text(r), r.unit or "-", default_text(r), r.doc]) for r in rules]
        notes = []
        in_context = [r.name for r in rules if r.in_context]
        if in_context:
            models = [r.name for r in rules if r.type == "model"]
            model = "model" if "model" in models else models[0]
            notes.append(f"`{' + '.join(in_context)}` must fit in the `max_context` of `{model}`.")
        if op.SPEC_NOTES:
            notes.append(op.SPEC_NOTES)
        if notes:
            lines += ["", " ".join(notes) if len(notes) == 1 else notes[0] + "\n\n" + "\n\n".join(notes[1:])]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def arch_markdown() -> str:
    """The architecture fields a model entry may set (`arch:` and `overrides:`), defaults from ModelArch."""
    defaults = {f.name: f.default for f in dc_fields(ModelArch) if f.default is not MISSING}
    lines = [_row(["key", "type", "default", "meaning"]), "|---|---|---|---|"]
    for name, rule in ARCH_RULES.items():
        default = defaults.get(name, REQUIRED)
        lines.append(_row([f"`{name}`", type_text(rule), default_text(rule, default), rule.doc]))
    return "\n".join(lines)


GENERATED = {"node kinds": node_kinds_markdown, "architecture fields": arch_markdown}
_BLOCK = re.compile(r"(<!-- BEGIN generated: (?P<name>[^-]+?) .*?-->\n)(?P<body>.*?)(<!-- END generated: (?P=name) -->)",
                    re.S)


def render(text: str) -> str:
    """The docs text with every generated block replaced by its current content."""
    found = set()

    def fill(match: re.Match) -> str:
        found.add(match["name"])
        return f"{match[1]}{GENERATED[match['name']]()}\n{match[4]}"

    rendered = _BLOCK.sub(fill, text)
    missing = set(GENERATED) - found
    if missing:
        raise ValueError(f"docs/spec.md lacks the generated block(s) {sorted(missing)}")
    return rendered


def main(argv: list[str]) -> int:
    text = DOCS.read_text(encoding="utf-8")
    current = render(text)
    if "--write" in argv:
        if current != text:
            DOCS.write_text(current, encoding="utf-8")
        return 0
    if current != text:
        print(f"docs/spec.md's field tables are out of date; run: {REGENERATE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
