"""The pass pipeline: registry of hetc's passes by name, parsing of pipeline strings, IR dumps.

Pipeline strings use xdsl-opt syntax: `inline-agents,decompose-llm,place{solver=exact}`. After every pass
the module is verified; a verifier error is reported at the YAML location of the offending op.

xDSL and the passes are imported inside the functions that use them, for start-up speed: hetc.cli.compile
reads DEFAULT_PIPELINE from here when the CLI builds its commands, and `hetc --help` must not load xDSL. The
passes never import this module (they sit below it: tests/test_imports.py).
"""

from __future__ import annotations

import bisect
import functools
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hetc.errors import Diagnostic, HetcError, Loc
from hetc.locations import op_loc

# The most hetc opt reads from an IR file or standard input: far above real IR, and /dev/zero-like input ends
MAX_IR_BYTES = 1_000_000_000
DEFAULT_PIPELINE = "inline-agents,decompose-llm,decompose-tools,decompose-nodes,place,partition"


def _registry() -> dict[str, Callable[[], type]]:
    def lazy(module: str, cls: str) -> Callable[[], type]:
        return lambda: getattr(__import__(f"hetc.passes.{module}", fromlist=[cls]), cls)

    passes = {
        "inline-agents": lazy("inline_agents", "InlineAgentsPass"),
        "decompose-llm": lazy("decompose_llm", "DecomposeLLMPass"),
        "decompose-tools": lazy("decompose_tools", "DecomposeToolsPass"),
        "decompose-nodes": lazy("decompose_nodes", "DecomposeNodesPass"),
        "place": lazy("place", "PlacePass"),
        "partition": lazy("partition", "PartitionPass"),
    }
    from xdsl.transforms import get_all_passes

    for name in ("dce", "cse", "canonicalize"):
        passes[name] = get_all_passes()[name]
    return passes


def make_context():
    from xdsl.context import Context
    from xdsl.dialects.builtin import Builtin

    from hetc.dialects.agent import Agent
    from hetc.dialects.task import Task

    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Agent)
    ctx.load_dialect(Task)
    return ctx


# Bytes an MLIR string literal must escape: control characters, DEL, '"', '\\' and (in the generic form, as
# upstream MLIR prints it) every non-ASCII byte.
_ESCAPED_ASCII = re.compile(rb'[\x00-\x1f\x7f"\\]')
_ESCAPED_BYTES = re.compile(rb'[^\x20-\x7e]|["\\]')


def _escape_byte(match: re.Match) -> bytes:
    byte = match[0][0]
    return b"\\\\" if byte == 0x5C else b"\\%02X" % byte


@functools.cache
def _printer_class():
    from xdsl.printer import Printer

    class HetcPrinter(Printer):
        """xDSL's printer with two changes to string literals. It escapes a whole string at once (xDSL writes
        every byte with its own call: a fifth of compile time on large graphs), with the same output. And the
        custom form keeps non-ASCII characters as UTF-8: xDSL reads a hex-escaped byte above 0x7F back as a
        bytes attribute, so escaped node ids and names would not parse back where an op wants a string."""

        def print_string(self, text: str, *, indent: int | None = None) -> None:
            # xDSL's print_string goes through print(); a line without a newline is written directly (a fifth
            # of printing a large module), with the same column bookkeeping
            if "\n" in text:
                super().print_string(text, indent=indent)
                return
            self._current_column += len(text)
            self.stream.write(text)

        def print_bytes_literal(self, bytestring: bytes):
            self.print_string('"' + _ESCAPED_BYTES.sub(_escape_byte, bytestring).decode("ascii") + '"')

        def print_string_literal(self, string: str):
            if self.print_generic_format or string.isascii():
                self.print_bytes_literal(string.encode("utf-8"))
                return
            escaped = _ESCAPED_ASCII.sub(_escape_byte, string.encode("utf-8")).decode("utf-8")
            self.print_string('"' + escaped + '"')

    return HetcPrinter


def print_module(module, generic: bool = False) -> str:
    buf = io.StringIO()
    _printer_class()(stream=buf, print_generic_format=generic, print_debuginfo=generic).print_op(module)
    buf.write("\n")
    return buf.getvalue()


def verify(module, stage: str) -> None:
    from xdsl.utils.exceptions import VerifyException

    try:
        module.verify()
        _verify_module_attributes(module)
    except VerifyException as exc:
        bad = _failing_op(module, str(exc)) or _redefined_symbol(module, str(exc)) or module
        where = op_loc(bad)
        raise HetcError([Diagnostic(where, f"invalid IR after {stage}: {exc}")]) from None


def _verify_module_attributes(module) -> None:
    from xdsl.utils.exceptions import VerifyException

    from hetc.dialects.task import TargetAttr

    target = module.attributes.get("hetc.target")
    if target is not None and not isinstance(target, TargetAttr):
        raise VerifyException(f"hetc.target must be a #task.target<...> (the hardware database), got {target}")


def _redefined_symbol(module, message: str):
    """The second definition of a symbol the module's symbol table rejects (xDSL names only the symbol)."""
    from xdsl.dialects.builtin import StringAttr

    match = re.search(r'Redefinition of symbol "(.*)"', message)
    if match is None:
        return None
    found = [op for op in module.body.block.ops if op.properties.get("sym_name") == StringAttr(match[1])]
    return found[-1] if found else None


def _failing_op(module, message: str = ""):
    """The innermost op whose verifier gives `message` (an enclosing graph may fail with its nested op's
    message), else the first op that fails."""
    from xdsl.utils.exceptions import VerifyException

    first = match = None
    for op in module.walk():  # pre-order: an op's nested ops come after it
        if op is module:
            continue
        try:
            op.verify(verify_nested_ops=False)
        except VerifyException as exc:
            first = first or op
            if str(exc) == message:
                match = op
    return match or first


@dataclass
class PipelineRun:
    """Runs a pipeline string on a module, recording the IR after the passes asked for."""

    spec: str = DEFAULT_PIPELINE
    dump: set[str] = field(default_factory=set)  # pass names, or {"all"}
    generic: bool = False
    options: dict[str, dict[str, object]] = field(default_factory=dict)  # defaults for pass fields
    dumps: list[tuple[str, str]] = field(default_factory=list)  # (after-pass name, IR text)
    pass_names: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per pass
    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU seconds per pass

    def passes(self) -> list:
        from xdsl.passes import PassPipeline

        registry = _registry()
        from xdsl.utils.exceptions import ArgSpecParseError

        try:
            pipeline = PassPipeline.parse_spec(registry, self.spec)
        # xdsl raises several kinds (parse errors, unknown pass, bad option); ArgSpecParseError is a
        # BaseException, so it needs naming
        except (Exception, ArgSpecParseError) as exc:
            names = ", ".join(sorted(registry))
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = lines[-1] if lines else type(exc).__name__
            at = next((line for line in lines if line.startswith("pass-pipeline:")), "")
            where = f" (at column {at.rsplit(':', 1)[-1]})" if at else ""
            if "hwdb" in reason:  # place{hwdb=...} named a database before the module recorded it
                reason += (" (no pass option names a hardware database: the compile records it on the module as "
                           "hetc.target; choose it with --hwdb and --hwdb-extra)")
            raise HetcError(f"bad pass pipeline '{self.spec}'{where}: {reason}. Known passes: {names}",
                            Loc("--passes")) from None
        from dataclasses import fields, replace

        result = []
        for p in pipeline.passes:
            # CLI-level options fill the fields the pipeline string left at their defaults
            given = self.options.get(p.name, {})
            unset = {f.name: given[f.name] for f in fields(p) if f.name in given and getattr(p, f.name) == f.default}
            result.append(replace(p, **unset) if unset else p)
        return result

    def run(self, module, stage_name: str = "parsed") -> None:
        ctx = make_context()
        verify(module, stage_name)
        self._record(stage_name, module)
        for p in self.passes():
            start, cpu = time.perf_counter(), time.process_time()
            changed = p.apply(ctx, module)
            self.timings[p.name] = self.timings.get(p.name, 0.0) + time.perf_counter() - start
            self.cpu_timings[p.name] = self.cpu_timings.get(p.name, 0.0) + time.process_time() - cpu
            self.pass_names.append(p.name)
            # A pass that says it left the module as it was (returns False; MLIR's "all analyses preserved")
            # is not verified again: verifying a 10,000-node module takes most of a second
            if changed is not False:
                verify(module, p.name)
            self._record(p.name, module)

    def wants(self, name: str) -> bool:
        """Whether the IR after stage `name` is dumped: printing a 10,000-node module takes seconds, so only the
        stages asked for are printed."""
        return "all" in self.dump or name in self.dump

    def _record(self, name: str, module) -> None:
        if self.wants(name):
            self.dumps.append((name, print_module(module, self.generic)))


# Brackets of textual IR nest with its regions and attributes; hetc's own IR nests fewer than 10 levels.
MAX_IR_NESTING = 256


@functools.cache
def _locating_parser_class():
    from xdsl.dialects.builtin import FileLineColLoc, IntAttr, StringAttr
    from xdsl.parser import Parser
    from xdsl.utils.exceptions import VerifyException
    from xdsl.utils.mlir_lexer import MLIRTokenKind, StringLiteral

    class LocatingParser(Parser):
        """xDSL's parser, giving every op written without a `loc(...)` the file:line:col it was read from, so a
        verifier error on hand-written IR points at its line (as the frontend's ops point at the YAML). An op
        with a written location keeps it, so generic-form dumps read back unchanged."""

        def parse_operation(self):
            start = self._current_token.span.start
            frames = self.__dict__.setdefault("hetc_frames", [])
            frames.append(0)  # locations parsed at this op's level (its own `loc(...)`, its block arguments')
            try:
                op = super().parse_operation()
            except VerifyException:  # an op or attribute that fails as it is read: the innermost op holds it
                self.__dict__.setdefault("hetc_failed_at", start)
                raise
            finally:
                explicit = frames.pop()
            if not explicit and not isinstance(op.location, FileLineColLoc):
                if not hasattr(self, "hetc_line_starts"):  # offsets of line starts, for bisect
                    text = self.lexer.input.content
                    self.hetc_line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
                line = bisect.bisect_right(self.hetc_line_starts, start)
                col = start - self.hetc_line_starts[line - 1] + 1
                op.location = FileLineColLoc(StringAttr(self.lexer.input.name), IntAttr(line), IntAttr(col))
            return op

        def parse_optional_attr_dict(self):
            return _typed_arch(super().parse_optional_attr_dict())

        def parse_optional_properties_dict(self):
            return _typed_arch(super().parse_optional_properties_dict())

        def parse_optional_str_literal(self):
            # xDSL lexes a literal with byte escapes above 0x7F as bytes; hetc prints non-ASCII control and bidi
            # characters that way for a terminal (hetc.errors.printable_ir), and its strings are text
            text = super().parse_optional_str_literal()
            token = self._current_token
            if text is None and token.kind == MLIRTokenKind.BYTES_LIT:
                try:
                    text = StringLiteral.from_span(token.span).bytes_contents.decode("utf-8")
                except UnicodeDecodeError:
                    return None
                self._consume_token()
            return text

        def parse_optional_location(self):
            location = super().parse_optional_location()
            frames = self.__dict__.get("hetc_frames")
            if location is not None and frames:  # written in the text (loc(unknown) too): kept as written
                frames[-1] += 1
            return location

    return LocatingParser


def _typed_arch(entries: dict) -> dict:
    """An agent.model's arch as an earlier hetc wrote it (a dictionary) reads as the #agent.arch it is now."""
    from xdsl.dialects.builtin import DictionaryAttr

    from hetc.dialects.agent import ArchAttr

    arch = entries.get("arch")
    if isinstance(arch, DictionaryAttr):
        entries["arch"] = ArchAttr(arch)
    return entries


# `%x = task.prefill @"answer.prefill"(...` at the start of an op: its name and symbol
_OP_AT = re.compile(r'(?:[%\w#:, ]+=\s*)?(?P<name>[a-z_]+\.[a-z_]+)\s+(?P<sym>@"(?:[^"\\]|\\.)*"|@[\w.\-/>$]+)')
_HEX_ESCAPE_ABOVE_7F = re.compile(r"\\[89A-Fa-f][0-9A-Fa-f]")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def parse_ir_file(path: str):
    from xdsl.utils.exceptions import ParseError, VerifyException

    from hetc.json_source import too_deep_at
    from hetc.userfiles import UnreadableFile, read_input

    try:
        path, data = read_input(path, MAX_IR_BYTES, "IR files")  # `-` is standard input
    except UnreadableFile as exc:
        raise HetcError(f"cannot read IR file: {exc}", Loc(str(path))) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", errors="replace")
        line, col = _line_col(prefix, len(prefix))
        raise HetcError(f"the IR file is not valid UTF-8 text (byte 0x{data[exc.start]:02x})",
                        Loc(path, line, col)) from None
    deep = too_deep_at(text, MAX_IR_NESTING, "[{(")
    if deep is not None:
        raise HetcError(f"the IR nests brackets deeper than {MAX_IR_NESTING} levels", Loc(path, *_line_col(text, deep)))
    parser = None
    try:
        parser = _locating_parser_class()(make_context(), text, path)  # reads the first token: may fail
        module = parser.parse_module()
    except ParseError as exc:
        # xDSL's message: "file:line:col\n<source line>\n<caret>\n<what went wrong>"
        lines = str(exc).splitlines()
        where = re.match(r"^.*:([0-9]+):([0-9]+)$", lines[0]) if lines else None
        message = " ".join(line.strip() for line in lines[3:]) or "cannot parse the IR"
        loc = Loc(path, int(where.group(1)), int(where.group(2))) if where else Loc(path)
        raise HetcError(message, loc) from None
    except ValueError:
        # xDSL's lexer takes any character str.isdigit() accepts ('²') as a digit, then int() refuses it
        where = next((i for i, c in enumerate(text) if c.isdigit() and not "0" <= c <= "9"), 0)
        raise HetcError("cannot parse the IR: a number with a digit other than 0-9",
                        Loc(path, *_line_col(text, where))) from None
    except VerifyException as exc:
        # An attribute that fails its own verifier as it is read (#task.device with replicas = 0), or a
        # custom-form op whose string holds hex-escaped bytes above 0x7F that are not UTF-8 (hand-written IR):
        # they read as bytes and the op's format rejects them.
        hint = (". Write non-ASCII characters in strings as UTF-8, not as \\XX escapes, or use the generic form"
                if _HEX_ESCAPE_ABOVE_7F.search(text) else "")
        at = vars(parser).get("hetc_failed_at", parser.pos) if parser is not None else 0
        where = Loc(path, *_line_col(text, at))
        op = _OP_AT.match(text, at)  # an op whose declared operand, result or property types it fails: name it
        named = f"{op['name']} {op['sym']}: " if op and op["sym"] not in str(exc) else ""
        raise HetcError(f"cannot parse the IR: {named}{exc}{hint}", where) from None
    _restore_strings(module)
    _upgrade_earlier_ir(module)
    return module


def _upgrade_earlier_ir(module) -> None:
    """IR an earlier hetc wrote reads as if written now: its hardware database as a `hetc.hwdb` dictionary
    becomes the `hetc.target` attribute, an `estimate = {...}` dictionary a #task.estimate<...>, and a
    `device_kind = "gpu"` attribute beside
    `placement = #task.device<...>` becomes the placement's kind. Its `hetc.placement` summary is dropped
    (plan-wide results live in plan.json)."""
    from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr
    from xdsl.utils.exceptions import VerifyException

    from hetc.dialects.task import DeviceAttr, EstimateAttr, TargetAttr

    legacy = module.attributes.get("hetc.hwdb")
    if isinstance(legacy, DictionaryAttr) and "hetc.target" not in module.attributes:
        name, extra, sha = (legacy.data.get(k) for k in ("name", "extra", "sha256"))
        if isinstance(name, StringAttr) and isinstance(sha, StringAttr) and isinstance(extra, ArrayAttr | None):
            files = [e.data for e in extra.data if isinstance(e, StringAttr)] if extra else []
            module.attributes["hetc.target"] = TargetAttr(name.data, files, sha.data)
            del module.attributes["hetc.hwdb"]
    module.attributes.pop("hetc.placement", None)
    for op in module.walk():
        estimate = op.attributes.get("estimate")
        if isinstance(estimate, DictionaryAttr):  # each value a number; EstimateAttr checks names and values
            values = {k: v.value.data for k, v in estimate.data.items() if isinstance(v, IntegerAttr | FloatAttr)}
            try:
                op.attributes["estimate"] = EstimateAttr.from_values(values)
            except VerifyException as exc:
                raise HetcError(f"cannot read the estimate of {op.name}: {exc}", op_loc(op)) from None
        kind, place = op.attributes.get("device_kind"), op.attributes.get("placement")
        if isinstance(kind, StringAttr) and isinstance(place, DeviceAttr) and not place.kind.data:
            op.attributes["placement"] = DeviceAttr(place.device.data, place.replicas.data, place.tp.data,
                                                    place.pp.data, place.batch.data, kind.data)
            del op.attributes["device_kind"]


def _restore_strings(module) -> None:
    """The generic form prints non-ASCII strings as byte escapes ("\\C3\\BC", as upstream MLIR does) and
    xDSL parses them back as bytes; hetc's strings (node ids, names) are text, so UTF-8 byte strings become
    string attributes again."""
    from xdsl.dialects.builtin import ArrayAttr, BytesAttr, DictionaryAttr, StringAttr

    def fix(attr):
        if isinstance(attr, BytesAttr):
            try:
                return StringAttr(attr.data.decode("utf-8"))
            except UnicodeDecodeError:
                return attr
        if isinstance(attr, ArrayAttr):
            return ArrayAttr([fix(a) for a in attr.data])
        if isinstance(attr, DictionaryAttr):
            return DictionaryAttr({k: fix(v) for k, v in attr.data.items()})
        return attr

    for op in module.walk():
        for table in (op.properties, op.attributes):
            for key, value in list(table.items()):
                table[key] = fix(value)
