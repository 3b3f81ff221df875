"""Identifier sanitisation: every name that reaches generated code (LLVM, PTX, C, TPC-C) passes through here.

A user's spec may name an op anything (`x"; system("rm -rf /")`, unicode, a C keyword). Generated code only
ever sees `c_identifier(name)`: `[A-Za-z_][A-Za-z0-9_]*`, at most `MAX_IDENTIFIER_CHARS` long. A name that is
already a safe identifier is kept as is (readable output); any other name is mapped to a readable ASCII stem
plus an 8-hex-digit sha256 suffix of the original text, so two different names that share a stem (`a-b`,
`a.b`) still get different identifiers. The mapping is a pure function of the text: stable across runs.
"""

from __future__ import annotations

import hashlib
import re

MAX_IDENTIFIER_CHARS = 48  # ptxas and C both accept far longer; short names keep files readable
_HASH_HEX_DIGITS = 8
_SAFE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_]+")

# Names that would clash with the languages we emit (C, TPC-C, PTX directives use a leading dot, so no clash).
_RESERVED = frozenset(
    """auto break case char const continue default do double else enum extern float for goto if inline int
    long register restrict return short signed sizeof static struct switch typedef union unsigned void
    volatile while main tensor float64 int64 int5 bool true false""".split()
)


def is_c_identifier(text: str) -> bool:
    """True when `text` can be emitted verbatim as an identifier in every target language."""
    return (
        bool(_SAFE.match(text))
        and len(text) <= MAX_IDENTIFIER_CHARS
        and not text.startswith("__")  # reserved for the implementation in C
        and text not in _RESERVED
    )


def is_safe_symbol(text: str, max_chars: int = 4 * MAX_IDENTIFIER_CHARS) -> bool:
    """True for a composed symbol (e.g. `hetc_<identifier>_sample`) that every target language accepts."""
    return bool(_SAFE.match(text)) and len(text) <= max_chars and not text.startswith("__")


def c_identifier(text: str) -> str:
    """A safe, stable identifier for any string (see the module docstring)."""
    if is_c_identifier(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX_DIGITS]
    stem = _UNSAFE_CHARS.sub("_", text).strip("_")
    stem = re.sub(r"_+", "_", stem)
    if not stem or stem[0].isdigit():
        stem = "n_" + stem
    stem = stem[: MAX_IDENTIFIER_CHARS - _HASH_HEX_DIGITS - 1].rstrip("_")
    return f"{stem}_{digest}"
