"""Read a compiled LangGraph graph into a neutral description: nodes, edges, what each node runs.

The structure comes from LangGraph's own drawing API, one level at a time: `get_graph()` gives a level's
nodes and edges (conditional ones marked), `get_subgraphs()` the nodes that run a whole graph, which are
read the same way. (`get_graph(xray=True)` draws the same nodes with every subgraph inlined under a
`name:` prefix; reading level by level keeps each subgraph as one hetc `agent` node.)

What a node runs is read from the runnable LangGraph stores as the node's data: a ToolNode lists its tools,
a chat model or retriever is found in the node's runnable (a `prompt | model` chain, a bound model) or in
the variables its function refers to (closures and module globals), as LangGraph itself finds subgraphs.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field

from hetc.errors import HetcError, Loc

START = "__start__"
END = "__end__"
MAX_DEPTH = 16  # subgraph nesting; deeper is almost surely a cycle of graphs
_SEARCH_DEPTH = 6  # how far to follow runnables and function references when looking for a model


@dataclass
class LGNode:
    name: str  # LangGraph's node name, as written by the user
    kind: str  # "llm", "tools", "retriever", "code" or "subgraph"
    models: list[str] = field(default_factory=list)  # model names of the chat models it calls ("" = unnamed)
    tools: list[str] = field(default_factory=list)  # a ToolNode's tools, in LangGraph's order
    top_k: int | None = None  # a retriever's search_kwargs["k"]
    subgraph: LGGraph | None = None


@dataclass
class LGEdge:
    source: str
    target: str
    conditional: bool
    send: bool = False  # the router returns Send objects: a fan-out, one call per Send


@dataclass
class LGGraph:
    name: str
    nodes: list[LGNode]  # without START and END, in LangGraph's order
    edges: list[LGEdge]  # START and END by their LangGraph names
    recursion_limit: int


def unsupported(where: str, node: str, why: str) -> HetcError:
    return HetcError(f"node {display(node)}: {why}", Loc(where))


def display(name: str, limit: int = 60, quote: bool = True) -> str:
    """A user's name shown safely in a message: ASCII only, control characters escaped, bounded, quoted."""
    text = name if len(name) <= limit else name[:limit] + "..."
    text = text.encode("ascii", "backslashreplace").decode()
    text = "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in text)
    return "'" + text.replace("'", "\\'") + "'" if quote else text


def recursion_limit(graph) -> int:
    """The graph's configured recursion limit, else LangGraph's default for the installed version."""
    configured = (getattr(graph, "config", None) or {}).get("recursion_limit")
    if isinstance(configured, int) and configured > 0:
        return int(configured)
    try:
        from langgraph._internal._config import DEFAULT_RECURSION_LIMIT
    except ImportError:  # older LangGraph: the documented default
        from langchain_core.runnables.config import DEFAULT_RECURSION_LIMIT
    return int(DEFAULT_RECURSION_LIMIT)


def read_graph(graph, where: str, limit: int | None = None, depth: int = 0) -> LGGraph:
    """The neutral description of a compiled graph (a Pregel) and, recursively, of its subgraphs."""
    from langgraph.pregel import Pregel

    if depth > MAX_DEPTH:
        raise HetcError(f"subgraphs nest deeper than {MAX_DEPTH} levels", Loc(where))
    limit = recursion_limit(graph) if limit is None else limit
    try:
        drawn = graph.get_graph()
        subgraphs = dict(graph.get_subgraphs())
    except Exception as exc:  # LangGraph's own drawing failed: report it as the graph's problem
        message = display(f"{type(exc).__name__}: {exc}", 200, quote=False)
        raise HetcError(f"LangGraph cannot draw the graph {display(str(getattr(graph, 'name', '')))}: {message}",
                        Loc(where)) from None
    sends = _send_routers(graph)
    nodes: list[LGNode] = []
    for node_id, node in drawn.nodes.items():
        if node_id in (START, END):
            continue
        if node_id in subgraphs:
            sub = subgraphs[node_id]
            if not isinstance(sub, Pregel):
                raise unsupported(where, node_id, f"runs a {type(sub).__name__} (a graph served elsewhere); hetc "
                                  "reads only graphs defined in this process")
            nodes.append(LGNode(node_id, "subgraph", subgraph=read_graph(sub, where, limit, depth + 1)))
        else:
            nodes.append(_classify(node_id, node.data, node.metadata or {}))
    edges: dict[tuple[str, str], LGEdge] = {}
    for edge in drawn.edges:
        key = (edge.source, edge.target)
        conditional = bool(edge.conditional) or (key in edges and edges[key].conditional)
        edges[key] = LGEdge(edge.source, edge.target, conditional, send=edge.source in sends and edge.conditional)
    order = {name: index for index, name in enumerate([START, *(n.name for n in nodes), END])}
    ordered = sorted(edges.values(), key=lambda e: (order.get(e.source, -1), order.get(e.target, -1)))
    return LGGraph(str(getattr(graph, "name", "") or "LangGraph"), nodes, ordered, limit)


def _send_routers(graph) -> set[str]:
    """Nodes whose conditional-edge router refers to `Send`: LangGraph's fan-out (map-reduce)."""
    from langgraph.types import Send

    builder = getattr(graph, "builder", None)
    found = set()
    for source, branches in sorted((getattr(builder, "branches", None) or {}).items()):
        for branch in branches.values():
            path = getattr(branch, "path", None)
            funcs = [getattr(path, "func", None), getattr(path, "afunc", None), path]
            if any(Send in _referenced(f).values() for f in funcs if callable(f)):
                found.add(source)
    return found


def _classify(name: str, data, metadata: dict) -> LGNode:
    from langgraph.prebuilt import ToolNode

    if isinstance(data, ToolNode) or "__tools" in metadata:
        tools = list(metadata.get("__tools") or getattr(data, "tools_by_name", {}) or [])
        return LGNode(name, "tools", tools=[str(t) for t in tools] or [name])
    models, retrievers = _find_models(data)
    if models:
        return LGNode(name, "llm", models=models)
    if retrievers:
        top_k = (getattr(retrievers[0], "search_kwargs", None) or {}).get("k")
        return LGNode(name, "retriever", top_k=top_k if isinstance(top_k, int) and top_k > 0 else None)
    return LGNode(name, "code")


def _find_models(root) -> tuple[list[str], list]:
    """The names of the chat models and the retrievers a node's runnable calls, in the order found."""
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.retrievers import BaseRetriever

    models: list[str] = []
    retrievers: list = []
    seen: set[int] = set()
    pending = [(root, 0)]
    while pending:
        obj, depth = pending.pop(0)
        if id(obj) in seen or depth > _SEARCH_DEPTH or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, BaseLanguageModel):
            name = model_name(obj)
            if name not in models:
                models.append(name)
            continue
        if isinstance(obj, BaseRetriever):
            retrievers.append(obj)
            continue
        pending.extend((child, depth + 1) for child in _children(obj))
    return models, retrievers


def model_name(model) -> str:
    """The model a chat model object calls, from the attribute its provider package uses ("" if none)."""
    for attr in ("model_name", "model", "model_id", "deployment_name", "repo_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _children(obj) -> list:
    """What a runnable or a function refers to that may hold a model: chain steps, bound runnables, the
    variables a function reads."""
    from langchain_core.runnables import Runnable

    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    if inspect.ismethod(obj):
        return [obj.__func__, obj.__self__]
    if inspect.isfunction(obj):
        return list(_referenced(obj).values())
    if isinstance(obj, Runnable):
        found = []
        for attr in ("bound", "steps", "first", "middle", "last", "steps__", "func", "afunc", "runnable",
                     "default", "branches", "deps"):
            value = getattr(obj, attr, None)
            if value is not None and not isinstance(value, (str, int, float, bool)):
                found.append(value)
        return found
    return []


def _referenced(func) -> dict:
    """The closure variables and module globals a function reads (by name, nested comprehensions and lambdas
    included), without running it."""
    code = getattr(func, "__code__", None)
    if code is None:
        return {}
    names: set[str] = set()
    pending = [code]
    while pending:
        current = pending.pop()
        names.update(current.co_names)
        pending.extend(c for c in current.co_consts if inspect.iscode(c))
    values = {}
    module_globals = getattr(func, "__globals__", {}) or {}
    for name in sorted(names):
        if name in module_globals:
            values[name] = module_globals[name]
    for name, cell in zip(code.co_freevars, func.__closure__ or (), strict=True):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
    return {k: v for k, v in values.items() if not inspect.ismodule(v) and not inspect.isclass(v) or _is_send(v)}


def _is_send(value) -> bool:
    from langgraph.types import Send

    return value is Send
