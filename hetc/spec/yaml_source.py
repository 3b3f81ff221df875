"""Safe YAML reading that keeps a source location on every key and value.

hetc specs are plain YAML: strings, numbers, booleans, null, lists and mappings. This module parses with
PyYAML's SafeLoader machinery but stops at the node graph (it never constructs arbitrary objects) and
converts it into small located values (YamlScalar, YamlList, YamlMap), so the spec loader can point every
error at `file:line:col` (1-based).

Protections, each a located HetcError (never a traceback):
- tags other than the plain YAML ones (`!!python/object`, `!foo`, `!!binary`, `!!set` ...);
- alias bombs: a document that expands to more than MAX_EXPANDED_NODES values, more than MAX_ALIASES
  alias references, or a recursive alias;
- nesting deeper than MAX_DEPTH, files larger than MAX_FILE_BYTES;
- invalid UTF-8, invalid YAML syntax, more than one document.
Duplicate mapping keys are not fatal here: YamlMap.duplicates records them and the loader reports them
in context (e.g. "duplicate node id").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

try:
    from yaml.cyaml import CParser
except ImportError:
    CParser = None

from hetc.errors import Diagnostic, HetcError, Loc

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a spec is a few KiB; anything larger is not a hand-written graph
MAX_DEPTH = 64  # nested lists/mappings; a spec needs about 8
MAX_ALIASES = 1000  # alias references (*name) per document
MAX_EXPANDED_NODES = 100_000  # values after expanding aliases (billion laughs expands to 10^9)

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MERGE_TAG = _STD + "merge"


@dataclass
class YamlScalar:
    value: Any  # str, int, float, bool or None (timestamps are kept as their text)
    text: str  # the scalar as written (without quotes)
    loc: Loc
    quoted: bool = False  # written in '...' or "..." (or a block scalar): always a string

    def describe(self) -> str:
        """How an error message shows this value: its type where that explains the problem."""
        if self.value is None:
            return "null" if self.text in ("", "~", "null", "Null", "NULL") else repr(self.text)
        if isinstance(self.value, bool):
            return f"boolean '{self.text}'"
        return repr(self.text) if isinstance(self.value, str) else self.text


@dataclass
class YamlList:
    items: list[YamlNode]
    loc: Loc

    def describe(self) -> str:
        return "a list"


@dataclass
class YamlMap:
    # key text -> (the key as a scalar, value); insertion order = file order
    entries: dict[str, tuple[YamlScalar, YamlNode]]
    loc: Loc
    # (key, location of the repeated key, location of the first one)
    duplicates: list[tuple[str, Loc, Loc]] = field(default_factory=list)

    def describe(self) -> str:
        return "a mapping"


YamlNode = YamlScalar | YamlList | YamlMap


def _loc(file: str, mark: Any) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag


class _LimitedComposer(Composer, Resolver):
    """Composes the node graph, counting aliases and nesting on the way; nothing is constructed."""

    def __init__(self, file: str):
        Resolver.__init__(self)
        Composer.__init__(self)
        self.hetc_file = file
        self.hetc_depth = 0
        self.hetc_aliases = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML signature
        if self.check_event(AliasEvent):
            self.hetc_aliases += 1
            if self.hetc_aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise HetcError([Diagnostic(_loc(self.hetc_file, mark),
                                            f"more than {MAX_ALIASES} YAML alias references (*name); "
                                            "hetc rejects documents built from aliases (alias bomb?)")])
            return super().compose_node(parent, index)
        self.hetc_depth += 1
        if self.hetc_depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise HetcError([Diagnostic(_loc(self.hetc_file, mark),
                                        f"YAML nesting deeper than {MAX_DEPTH} levels")])
        try:
            return super().compose_node(parent, index)
        finally:
            self.hetc_depth -= 1


class _PyLoader(_LimitedComposer, Reader, Scanner, Parser):
    """PyYAML's pure-Python scanner and parser: its syntax error messages say what was found."""

    def __init__(self, stream: str, file: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _LimitedComposer.__init__(self, file)


if CParser is not None:
    class _FastLoader(_LimitedComposer, CParser):
        """libyaml scans and parses (4x faster than the pure-Python parser); events and marks are the same."""

        def __init__(self, stream: str, file: str):
            CParser.__init__(self, stream)
            _LimitedComposer.__init__(self, file)
else:  # PyYAML built without libyaml
    _FastLoader = _PyLoader


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", errors="replace")
        line, col = _line_col(prefix, len(prefix))
        raise HetcError([Diagnostic(Loc(file, line, col),
                                    f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})")]) from None


def _expanded_size(node: Node, file: str, sizes: dict[int, int], active: set[int]) -> int:
    """Number of values the node stands for once every alias is expanded (memoised per node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise HetcError([Diagnostic(_loc(file, node.start_mark), "recursive YAML alias: a value contains itself")])
    active.add(key)
    total = 1
    if isinstance(node, SequenceNode):
        total += sum(_expanded_size(child, file, sizes, active) for child in node.value)
    elif isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            total += _expanded_size(key_node, file, sizes, active)
            total += _expanded_size(value_node, file, sizes, active)
    active.discard(key)
    if total > MAX_EXPANDED_NODES:
        raise HetcError([Diagnostic(_loc(file, node.start_mark),
                                    f"this value expands to more than {MAX_EXPANDED_NODES} YAML values through "
                                    "aliases (an alias bomb such as 'billion laughs'); write the spec out plainly")])
    sizes[key] = total
    return total


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.errors: list[Diagnostic] = []
        self.constructor = yaml.SafeLoader("")  # only its scalar constructors are used

    def convert(self, node: Node) -> YamlNode:
        loc = _loc(self.file, node.start_mark)
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if isinstance(node, SequenceNode):
            if node.tag != _STD + "seq":
                self._bad_tag(node, loc)
            return YamlList([self.convert(child) for child in node.value], loc)
        if node.tag != _STD + "map":
            self._bad_tag(node, loc)
        return self._mapping(node, loc)

    def _bad_tag(self, node: Node, loc: Loc) -> None:
        self.errors.append(Diagnostic(loc, f"YAML tag '{_short_tag(node.tag)}' is not allowed: hetc specs use plain "
                                           "YAML values (strings, numbers, booleans, null, lists, mappings)"))

    def _scalar(self, node: ScalarNode, loc: Loc) -> YamlScalar:
        quoted = bool(node.style)  # plain is None (pure Python) or "" (libyaml); '...', "...", | or >
        if node.tag not in _SCALAR_TAGS:
            if node.tag == _MERGE_TAG:
                return YamlScalar("<<", node.value, loc)
            self._bad_tag(node, loc)
            return YamlScalar(node.value, node.value, loc, quoted)
        if node.tag == _STD + "timestamp":
            value: Any = node.value  # a date is just text to hetc
        else:
            try:
                value = self.constructor.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError) as exc:  # e.g. "!!int abc"
                self.errors.append(Diagnostic(loc, f"invalid {_short_tag(node.tag)} value {node.value!r}: {exc}"))
                value = node.value
        return YamlScalar(value, node.value, loc, quoted)

    def _mapping(self, node: MappingNode, loc: Loc) -> YamlMap:
        result = YamlMap({}, loc)
        merged: list[YamlMap] = []
        for key_node, value_node in node.value:
            key_loc = _loc(self.file, key_node.start_mark)
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(self.convert(value_node), key_loc))
                continue
            if not isinstance(key_node, ScalarNode):
                self.errors.append(Diagnostic(key_loc, "mapping keys must be plain strings, not lists or mappings"))
                continue
            if key_node.tag not in _SCALAR_TAGS:
                self._bad_tag(key_node, key_loc)
                continue
            key = key_node.value  # the text as written: `on:` is the key "on", not True
            if key in result.entries:
                result.duplicates.append((key, key_loc, result.entries[key][0].loc))
                continue
            key_scalar = YamlScalar(key, key, key_loc, bool(key_node.style))
            result.entries[key] = (key_scalar, self.convert(value_node))
        # YAML merge keys (`<<: *defaults`): explicit keys win, earlier merge sources win over later ones
        for source in merged:
            for key, entry in source.entries.items():
                result.entries.setdefault(key, entry)
        return result

    def _merge_sources(self, value: YamlNode, loc: Loc) -> list[YamlMap]:
        items = value.items if isinstance(value, YamlList) else [value]
        if all(isinstance(item, YamlMap) for item in items):
            return items  # type: ignore[return-value]
        self.errors.append(Diagnostic(loc, "a YAML merge key '<<' needs a mapping or a list of mappings"))
        return []


def _compose(loader_class: type, text: str, file: str) -> tuple[Node | None, int]:
    """The document's node graph and its number of alias references."""
    loader = loader_class(text, file)
    try:
        return loader.get_single_node(), loader.hetc_aliases
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> HetcError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        if "but found another document" in message:
            message = "a spec is one YAML document; found a second one ('---')"
        loc = _loc(file, mark) if mark is not None else Loc(file)
        return HetcError([Diagnostic(loc, f"invalid YAML: {message}")])
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _line_col(text, exc.position)
        return HetcError([Diagnostic(Loc(file, line, col),
                                     f"invalid YAML: control character U+{exc.character:04X} is not allowed")])
    return HetcError([Diagnostic(Loc(file), f"invalid YAML: {exc}")])


def parse_yaml(data: bytes, file: str) -> YamlNode | None:
    """Parse one YAML document; None for an empty document. `file` is the name used in locations."""
    if len(data) > MAX_FILE_BYTES:
        raise HetcError([Diagnostic(Loc(file), f"the file is {len(data)} bytes; hetc reads specs of at most "
                                               f"{MAX_FILE_BYTES} bytes (1 MiB)")])
    text = _decode(data, file)
    try:
        node, aliases = _compose(_FastLoader, text, file)
    except yaml.YAMLError:
        # the pure-Python parser reports syntax errors better ("expected ',' or ']', but got ':'" where
        # libyaml says "did not find expected ',' or ']'"), and the same way with or without libyaml
        try:
            node, aliases = _compose(_PyLoader, text, file)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, text, file) from None
    if node is None:
        return None
    if aliases:  # without aliases a document expands to exactly what is written (bounded by the file size)
        _expanded_size(node, file, {}, set())
    converter = _Converter(file)
    result = converter.convert(node)
    if converter.errors:
        raise HetcError(converter.errors)
    return result


def read_yaml_mapping(data: bytes, file: str, what: str = "a hetc spec") -> YamlMap:
    """Parse a document whose top level must be a mapping (a spec or an included agent file)."""
    root = parse_yaml(data, file)
    if root is None:
        raise HetcError([Diagnostic(Loc(file, 1, 1), f"the file is empty; expected {what} "
                                                     "(a mapping starting with 'hetc: 1')")])
    if not isinstance(root, YamlMap):
        raise HetcError([Diagnostic(root.loc, f"the top level must be a mapping (key: value lines) for {what}, "
                                              f"got {root.describe()}")])
    return root
