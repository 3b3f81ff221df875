"""Import a LangGraph graph as a hetc spec: `import_graph(graph)` in Python, `hetc import langgraph` on the
command line (docs/import.md).

    from hetc.importers.langgraph import import_graph
    imported = import_graph(app, trace="runs.json")   # a compiled graph or a StateGraph builder
    imported.write("agent.yaml")                      # or: result = imported.compile(CompileOptions())
    print(imported.todos)                             # what to measure and fill in
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hetc import __version__
from hetc.errors import HetcError, Loc
from hetc.importers import defaults as D
from hetc.importers.spec_build import SpecBuilder, safe_id
from hetc.importers.spec_yaml import comment_block, flow, graph_lines, scalar

_TARGET = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass
class ImportedSpec:
    name: str
    text: str  # the spec's YAML, comments included
    todos: list[str] = field(default_factory=list)  # each default the user should replace, "where: what"

    def write(self, path: str | Path) -> None:
        from hetc.bundle.writer import write_file

        write_file(path, self.text.encode("utf-8"))  # atomic, exit 2 on a disk error or a non-file

    def load(self, hwdb: str = "default"):
        """The validated spec (hetc.spec.Spec), as `hetc validate` reads it."""
        from hetc.compiler import CompileOptions, load

        with tempfile.TemporaryDirectory(prefix="hetc-import-") as tmp:
            return load(self._file(tmp), CompileOptions(hwdb=hwdb))[1]

    def compile(self, options=None):
        """Compile the spec (hetc.compiler.compile_spec) without a spec file of the user's in between."""
        from hetc.compiler import CompileOptions, compile_spec

        with tempfile.TemporaryDirectory(prefix="hetc-import-") as tmp:
            return compile_spec(self._file(tmp), options or CompileOptions())

    def _file(self, directory: str) -> str:
        path = os.path.join(directory, f"{safe_id(self.name, 'agent')}.yaml")
        self.write(path)
        return path


def import_graph(graph, trace: str | Path | None = None, name: str | None = None,
                 source: str = "the graph") -> ImportedSpec:
    """The hetc spec of a LangGraph graph (compiled, or a StateGraph builder), numbers from a trace file
    (hetc.importers.trace) where given. `source` names the graph in messages (e.g. `module:attr`)."""
    _require_langgraph()
    from hetc.importers.lg_read import read_graph

    compiled = _compiled(graph, source)
    lg = read_graph(compiled, source)
    stats = None
    if trace is not None:
        from hetc.importers.observe import observe
        from hetc.importers.trace import read_trace

        roots = read_trace(trace)
        stats = observe(lg, roots)
        if not stats.get((), None) or not stats[()].invocations:
            raise HetcError("no run in the trace matches a node of the graph (a node's run is named after the "
                            "node)", Loc(str(trace)))
    builder = SpecBuilder(source, stats)
    spec_graph = builder.graph(lg)
    spec_name = safe_id(name or lg.name, "agent")
    return ImportedSpec(spec_name, _text(spec_name, lg.name, source, builder, spec_graph, stats, trace),
                        builder.todos + _global_todos())


def load_target(target: str):
    """The object `module:attr` names, importing the module from the current directory or sys.path."""
    if not _TARGET.fullmatch(target):
        raise HetcError("expected MODULE:ATTR, e.g. my_agent:graph (a dotted module path, a colon, a dotted "
                        "attribute)", Loc(target if target.isprintable() and len(target) < 200 else "the target"))
    module_name, attr = target.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise HetcError(f"cannot import module '{module_name}': {_safe(str(exc))}", Loc(target)) from None
    except Exception as exc:  # the user's module failed while running: say so, without its traceback
        raise HetcError(f"importing module '{module_name}' raised {type(exc).__name__}: {_safe(str(exc))}",
                        Loc(target)) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise HetcError(f"'{module_name}' has no attribute '{attr}'", Loc(target))
        obj = getattr(obj, part)
    return obj


def _compiled(graph, source: str):
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    if isinstance(graph, StateGraph):
        try:
            return graph.compile()
        except Exception as exc:  # LangGraph's own validation of the builder
            raise HetcError(f"LangGraph cannot compile the builder: {type(exc).__name__}: {_safe(str(exc))}",
                            Loc(source)) from None
    if isinstance(graph, Pregel):
        return graph
    raise HetcError(f"expected a compiled LangGraph graph or a StateGraph builder, found a {type(graph).__name__}",
                    Loc(source))


def _require_langgraph() -> None:
    try:
        import langchain_core  # noqa: F401
        import langgraph  # noqa: F401
    except ImportError:
        raise HetcError("importing LangGraph graphs needs the langgraph and langchain-core packages: "
                        "pip install 'hetc[langgraph]'", Loc("hetc import")) from None


def _safe(text: str, limit: int = 200) -> str:
    """A foreign message shown on one line: printable ASCII, bounded."""
    text = text.encode("ascii", "backslashreplace").decode()
    text = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _global_todos() -> list[str]:
    return [f"traffic: requests_per_s = {D.REQUESTS_PER_S} (the request rate to plan for)",
            f"slo: ttft_ms = {D.TTFT_MS}, tbt_ms = {D.TBT_MS}, no end-to-end latency target (your service level)",
            "hardware: none given, so every device of the hardware database is a candidate (list the devices "
            "you can buy or own)"]


def _text(name: str, graph_name: str, source: str, builder: SpecBuilder, graph, stats, trace) -> str:
    head = [f"Imported from a LangGraph graph by `hetc import langgraph` (hetc {__version__}).",
            "Read from LangGraph: nodes, edges, tools, chat model names, subgraphs, the recursion limit."]
    if trace is not None:
        invocations = stats[()].invocations
        head.append(f"Measured from a trace of {invocations} graph runs: token counts, tool latencies, branch "
                    "probabilities and loop bounds where observed.")
    head += ["", "TODO: defaults to replace with measured values (docs/import.md, Defaults):"]
    head += [f"- {todo}" for todo in builder.todos + _global_todos()]
    lines = comment_block(head)
    described = f"Imported from the LangGraph graph {source if _TARGET.fullmatch(source) else safe_id(graph_name, 'graph')}"
    lines += ["hetc: 1", f"name: {scalar(name)}", f"description: {scalar(described)}",
              f"slo: {flow({'ttft_ms': D.TTFT_MS, 'tbt_ms': D.TBT_MS})}  # TODO: your service level",
              f"traffic: {flow({'requests_per_s': D.REQUESTS_PER_S})}  # TODO: your request rate"]
    if builder.models:
        lines.append("models:")
        for entry in sorted(builder.models.values(), key=lambda e: e.id):
            fields = {"preset": entry.preset}
            comment = "TODO: placeholder model" if entry.preset == D.PLACEHOLDER_PRESET and \
                D.preset_for(entry.source_name or "") is None else ""
            line = f"  {scalar(entry.id)}: {flow(fields)}"
            if entry.max_context:
                line = f"  {scalar(entry.id)}: {{preset: {scalar(entry.preset)}, overrides: " \
                       f"{flow({'max_context': entry.max_context})}}}"
                comment = (comment + "; " if comment else "") + "context raised to fit the observed tokens"
            lines.append(f"{line}  # {comment}" if comment else line)
    lines += graph_lines(graph, "")
    return "\n".join(lines) + "\n"
