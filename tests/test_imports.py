"""The import structure: every module imports on its own, and the passes never import the compile driver.

The import graph is read from the sources (ast), function-local imports included: a local import does not
remove a cycle, it only hides it until the function runs.
"""

from __future__ import annotations

import ast
import configparser
import functools
import importlib.util
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import hetc

ROOT = Path(__file__).resolve().parents[1]

DRIVER = {"hetc.pipeline", "hetc.compiler"}


def _modules() -> dict[str, str]:
    """Every module of the installed hetc package -> its file."""
    found = {"hetc": hetc.__file__}
    for info in pkgutil.walk_packages(hetc.__path__, "hetc."):
        found[info.name] = importlib.util.find_spec(info.name).origin
    return found


def _resolve(name: str, modules: dict[str, str]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """module -> the hetc modules it imports anywhere in its source (top level or inside a function)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                # `from hetc.placement import problem` imports a module; `from hetc.x import f` the module x
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges.update(t for t in (_resolve(t, modules) for t in targets if t.startswith("hetc"))
                         if t and t != name)
    # the pipeline's pass registry imports every pass by name (importlib), which ast does not see
    graph["hetc.pipeline"].update(m for m in modules if m.startswith("hetc.passes."))
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> dict[str, str | None]:
    """Every module reachable from `start`, each with the module that first reached it (for the path)."""
    seen: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        here = todo.pop()
        for there in sorted(graph[here]):
            if there not in seen:
                seen[there] = here
                todo.append(there)
    return seen


def _path(seen: dict[str, str | None], end: str) -> list[str]:
    path = [end]
    while seen[path[-1]] is not None:
        path.append(seen[path[-1]])
    return path[::-1]


def test_the_passes_never_import_the_compile_driver():
    graph = import_graph()
    passes = sorted(m for m in graph if m.startswith("hetc.passes."))
    assert "hetc.passes.place" in passes and "hetc.passes.partition" in passes
    bad = []
    for module in passes:
        seen = _reachable(graph, module)
        bad += [" -> ".join(_path(seen, driver)) for driver in sorted(DRIVER & seen.keys())]
    assert bad == [], "passes must depend on the model and placement layers only:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_no_import_cycle():
    cycles = set(_cycles(import_graph()))
    assert not cycles, [sorted(c) for c in cycles]


def test_cycle_finder_finds_a_hidden_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]


# The third-party libraries hetc imports, loaded once before the forks: each child then pays only for hetc's
# own modules, which are what can form a cycle. (Ray Serve alone takes seconds to import.)
PRELOAD = ("xdsl.ir", "xdsl.irdl", "xdsl.dialects.builtin", "xdsl.parser", "xdsl.printer", "xdsl.passes",
           "xdsl.pattern_rewriter", "xdsl.traits", "xdsl.context", "xdsl.transforms", "numpy", "scipy.optimize",
           "scipy.sparse", "scipy.stats", "scipy.special", "yaml", "click", "rich.console", "rich.table", "jinja2",
           "llvmlite.ir", "llvmlite.binding", "jsonschema", "jsonschema_rs", "ray.serve", "starlette.applications",
           "uvicorn", "aiohttp", "prometheus_client", "langgraph.graph", "langchain_core.runnables")

_CHILD = textwrap.dedent("""
    import importlib, os, sys, traceback
    for name in sys.argv[1].split(","):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    assert not any(m == "hetc" or m.startswith("hetc.") for m in sys.modules)
    todo, running, failed = list(sys.argv[2:]), {}, []
    while todo or running:
        while todo and len(running) < (os.cpu_count() or 1):
            name = todo.pop(0)
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: a clean interpreter but for the preloaded libraries
                os.close(read)
                try:
                    importlib.import_module(name)
                    os._exit(0)
                except BaseException:
                    os.write(write, traceback.format_exc(limit=-3).encode()[-4000:])
                    os._exit(1)
            os.close(write)
            running[pid] = (name, read)
        pid, status = os.wait()
        name, read = running.pop(pid)
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read().decode(errors="replace").strip()
        if status != 0:
            failed.append(f"{name}: {message.splitlines()[-1] if message else status}")
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
""")


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each module is the first hetc module its interpreter imports (a fork of one clean interpreter per
    module): an import cycle that only one entry order breaks fails here."""
    modules = sorted(_modules())
    assert len(modules) > 100
    done = subprocess.run([sys.executable, "-c", _CHILD, ",".join(PRELOAD), *modules], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_setup_cfg_installs_every_package():
    """A package missing from setup.cfg works in an editable install and is absent from a wheel."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    packages = {name for name, path in _modules().items() if path.endswith("__init__.py")}
    assert packages - listed == set()
