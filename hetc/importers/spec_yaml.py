"""Write an imported spec as commented YAML in the layout of examples/*.yaml (one flow mapping per node).

Comments hold only text hetc wrote and sanitised ids; every string value is either a plain scalar YAML reads
back as the same string, or quoted by hetc.yaml_text (printable ASCII single-quoted, anything else
double-quoted with every other character escaped). So no name a user gave a node can break the file.
"""

from __future__ import annotations

import re

import yaml

from hetc.importers.spec_build import SpecEdge, SpecGraph, SpecNode
from hetc.yaml_text import _scalar as _yaml_scalar

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\- >]*[A-Za-z0-9_]|[A-Za-z_]")


def scalar(value) -> str:
    """A YAML scalar: ids and edges plain (they are sanitised: `a -> b` stays readable), anything else as the
    bundle writer quotes it (plain when YAML reads it back the same, else quoted and escaped)."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return _yaml_scalar(value)


def flow(fields: dict) -> str:
    return "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in fields.items()) + "}"


def with_comment(line: str, comment: str) -> str:
    return f"{line}  # {_comment(comment)}" if comment else line


def _comment(text: str) -> str:
    """A comment is one line of printable ASCII (the importer's own words and sanitised ids)."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def graph_lines(graph: SpecGraph, pad: str) -> list[str]:
    lines = [f"{pad}nodes:"]
    for node in graph.nodes:
        lines.extend(_node_lines(node, pad + "  "))
    lines.append(f"{pad}edges:")
    lines.extend(_edge_line(edge, pad + "  ") for edge in graph.edges)
    return lines


def _node_lines(node: SpecNode, pad: str) -> list[str]:
    if node.graph is None:
        return [with_comment(f"{pad}{scalar(node.id)}: {flow(node.fields)}", node.comment)]
    lines = [with_comment(f"{pad}{scalar(node.id)}:", node.comment)]
    lines.extend(f"{pad}  {scalar(k)}: {scalar(v)}" for k, v in node.fields.items())
    lines.append(f"{pad}  graph:")
    lines.extend(graph_lines(node.graph, pad + "    "))
    return lines


def _edge_line(edge: SpecEdge, pad: str) -> str:
    attrs = {}
    if edge.probability < 1.0:
        attrs["probability"] = edge.probability
    if edge.max_iterations is not None:
        attrs["max_iterations"] = edge.max_iterations
    text = scalar(f"{edge.src} -> {edge.dst}")
    return with_comment(f"{pad}- {text}: {flow(attrs)}" if attrs else f"{pad}- {text}", edge.comment)


def comment_block(lines: list[str]) -> list[str]:
    return [f"# {_comment(line)}".rstrip() for line in lines]
