"""Deterministic block YAML for bundle files (Kubernetes manifests, the Ray Serve config).

The data is plain JSON-like values (mappings with string keys, lists, strings, numbers, booleans, null).
PyYAML's dumper walks such data through a representer, a serializer and an emitter; on a 10,000-node
graph's manifests that took most of a minute. This writer emits the same structure in one pass: keys
sorted, lists at their key's indent, strings plain when YAML reads them back as the same string,
single-quoted when they are printable ASCII, and double-quoted with every other character escaped. `yaml.safe_load` of the text
gives back the data exactly (tests/test_yaml_text.py checks that on random data).
"""

from __future__ import annotations

import functools
import math
import re

from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

# plain scalars: no indicator first, no ':' last, no ': ' or ' #' inside (checked in _str), no trailing space
_PLAIN = re.compile(r"[A-Za-z0-9_/$](?:[-A-Za-z0-9_./@$=+: ]*[-A-Za-z0-9_./@$=+])?")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_ESCAPE = re.compile(r'[^\x20-\x7e]|["\\]')
_STR_TAG = "tag:yaml.org,2002:str"


def to_yaml(data: dict | list) -> str:
    """The YAML text of a mapping or list."""
    if not data:
        return "{}\n" if isinstance(data, dict) else "[]\n"
    lines: list[str] = []
    _emit(data, "", lines)
    return "\n".join(lines) + "\n"


def _emit(value: dict | list, pad: str, lines: list[str]) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            if isinstance(item, dict) and item:
                lines.append(f"{pad}{_str(key)}:")
                _emit(item, pad + "  ", lines)
            elif isinstance(item, list) and item:
                lines.append(f"{pad}{_str(key)}:")
                _emit(item, pad, lines)  # block sequences sit at their key's indent, as PyYAML writes them
            else:
                lines.append(f"{pad}{_str(key)}: {_scalar(item)}")
        return
    for item in value:
        if isinstance(item, (dict, list)) and item:
            first = len(lines)
            _emit(item, pad + "  ", lines)
            lines[first] = f"{pad}- {lines[first][len(pad) + 2:]}"  # the first entry shares the dash's line
        else:
            lines.append(f"{pad}- {_scalar(item)}")


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no place in a bundle file")
        text = repr(value).lower()
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text  # YAML 1.1 floats need a dot
    if isinstance(value, str):
        return _str(value)
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    raise TypeError(f"cannot write a {type(value).__name__} as YAML")


@functools.lru_cache(maxsize=65536)
def _str(text: str) -> str:
    # plain only when YAML 1.1 resolves it to a string ("yes", "1e3", "1:20", "2024-01-01" are not)
    if _PLAIN.fullmatch(text) and ": " not in text and Resolver().resolve(ScalarNode, text, (True, False)) == _STR_TAG:
        return text
    if _PRINTABLE_ASCII.fullmatch(text):
        return "'" + text.replace("'", "''") + "'"
    return '"' + _ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match) -> str:
    char = match[0]
    if char in '"\\':
        return "\\" + char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
