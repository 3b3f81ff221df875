"""What a trace says about each level of a LangGraph graph: calls, tokens, latencies, transitions, loops.

Nodes are counted in hetc's terms: a ToolNode's run counts as a call of each tool it called (the tools run
in the trace's `tool` runs under it), since the importer makes one hetc node per tool.

Transitions: the node runs of one graph invocation are ordered by superstep (`metadata.langgraph_step`) when
every run has one, else by start time, one step each. A run's successors are the runs of the nearest later
step that holds a node the graph has an edge to; a run with no such step ended the graph when the graph has
an edge from it to END.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from hetc.importers.lg_read import END, START, LGGraph
from hetc.importers.trace import Run

Key = tuple[str, str | None]  # (LangGraph node name, tool name for a ToolNode's tool, else None)


@dataclass
class LevelStats:
    invocations: int = 0
    calls: Counter = field(default_factory=Counter)  # Key -> calls
    tokens: dict = field(default_factory=lambda: defaultdict(list))  # node name -> [(in, out)] per call
    durations: dict = field(default_factory=lambda: defaultdict(list))  # Key -> [ms] per call
    taken: Counter = field(default_factory=Counter)  # (Key, Key) -> times taken (fractional: a split share)
    per_invocation: dict = field(default_factory=lambda: defaultdict(list))  # (Key, Key) -> [count per run]


def observe(graph: LGGraph, roots: list[Run]) -> dict[tuple[str, ...], LevelStats]:
    """Statistics per graph level; the key is the path of subgraph node names from the top (() = top)."""
    stats: dict[tuple[str, ...], LevelStats] = {}
    for root in roots:
        _invocation(graph, root, (), stats)
    return stats


def _invocation(graph: LGGraph, root: Run, path: tuple[str, ...], stats: dict) -> None:
    level = stats.setdefault(path, LevelStats())
    names = {node.name: node for node in graph.nodes}
    runs = _node_runs(root, names)
    if not runs:
        return
    level.invocations += 1
    targets: dict[str, set[str]] = defaultdict(set)
    for edge in graph.edges:
        targets[edge.source].add(edge.target)
    steps = _steps(runs)
    counts: Counter = Counter()
    for run in runs:
        node = names[run.name]
        keys = _keys(node, run)
        for key in keys:
            level.calls[key] += 1
        if node.kind == "tools":
            for call in _tool_calls(node, run):
                level.durations[(node.name, call.name)].append(call.duration_ms)
        else:
            level.durations[(node.name, None)].append(run.duration_ms)
        if node.kind == "llm":
            used = [(r.input_tokens, r.output_tokens) for r in run.descendants()]
            total = (sum(i for i, _ in used), sum(o for _, o in used))
            if total[0] > 0 or total[1] > 0:
                level.tokens[node.name].append(total)
        if node.kind == "subgraph" and node.subgraph is not None:
            _invocation(node.subgraph, run, (*path, node.name), stats)
    by_step: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_step[steps[id(run)]].append(run)
    order = sorted(by_step)
    for run in by_step[order[0]]:
        if run.name in targets[START]:
            _take(level, counts, [(START, None)], _keys(names[run.name], run))
    for position, step in enumerate(order):
        for run in by_step[step]:
            sources = _keys(names[run.name], run)
            successors = next((found for later in order[position + 1:]
                               if (found := [r for r in by_step[later] if r.name in targets[run.name]])), [])
            for succ in successors:
                _take(level, counts, sources, _keys(names[succ.name], succ))
            if not successors and END in targets[run.name]:
                _take(level, counts, sources, [(END, None)])
    for pair, count in counts.items():
        level.per_invocation[pair].append(count)


def _take(level: LevelStats, counts: Counter, sources: list[Key], targets: list[Key]) -> None:
    for src in sources:
        for dst in targets:
            level.taken[(src, dst)] += 1.0 / len(targets)
            counts[(src, dst)] += 1


def _node_runs(root: Run, names: dict) -> list[Run]:
    """The nearest runs under root named after a node of this level."""
    found = []
    pending = list(root.children)
    while pending:
        run = pending.pop(0)
        if run.name in names:
            found.append(run)
        else:
            pending.extend(run.children)
    return sorted(found, key=lambda r: (r.start, r.order))


def _steps(runs: list[Run]) -> dict[int, int]:
    if all(r.step is not None for r in runs):
        return {id(r): r.step for r in runs}
    return {id(r): index for index, r in enumerate(runs)}


def _tool_calls(node, run: Run) -> list[Run]:
    tools = set(node.tools)
    return [r for r in run.descendants() if r.name in tools and r.run_type in ("tool", "")]


def _keys(node, run: Run) -> list[Key]:
    if node.kind != "tools":
        return [(node.name, None)]
    called = list(dict.fromkeys(call.name for call in _tool_calls(node, run)))
    return [(node.name, tool) for tool in (called or node.tools)]
