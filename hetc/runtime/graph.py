"""The stage graph of a plan as the router walks it: edges by stage, loops and their bodies.

Semantics follow docs/plan.md ("edges[]"): a stage runs when every forward in-edge has delivered a value
or a skip; a stage whose inputs are all skips is skipped; a back edge re-enters its loop at most
`max_iterations` times; after a loop's first pass a join inside the body waits only for inputs from
inside the body. Branches are decided at run time by what a stage produced (router.py), not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Edge:
    index: int
    src: str
    dst: str
    probability: float
    max_iterations: int | None
    back_edge: bool

    @property
    def is_branch(self) -> bool:
        return self.probability < 1 and not self.back_edge


@dataclass
class Loop:
    edge: Edge  # the back edge closing it
    body: frozenset[str]  # stages on a forward path from edge.dst to edge.src


@dataclass
class StageGraph:
    stages: dict[str, dict[str, Any]]  # id -> the plan's stage, topological order
    edges: list[Edge]
    out_edges: dict[str, list[Edge]] = field(default_factory=dict)
    in_forward: dict[str, list[Edge]] = field(default_factory=dict)
    loops: list[Loop] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return [s for s, stage in self.stages.items() if stage["kind"] == "input"]

    @property
    def outputs(self) -> list[str]:
        return [s for s, stage in self.stages.items() if stage["kind"] == "output"]

    def loops_of_edge(self, edge: Edge) -> list[Loop]:
        """The loops an edge keeps a request inside: their back edge, or a forward edge within their body."""
        return [loop for loop in self.loops
                if loop.edge is edge or (not edge.back_edge and edge.src in loop.body and edge.dst in loop.body)]

    def node_stages(self, node: str) -> list[str]:
        return [s for s, stage in self.stages.items() if stage["node"] == node]


def _reachable(start: str, step: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in step.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def stage_graph(plan: dict[str, Any]) -> StageGraph:
    stages = {s["id"]: s for s in plan["stages"]}
    edges = [Edge(i, e["src"], e["dst"], float(e["probability"]), e["max_iterations"], bool(e["back_edge"]))
             for i, e in enumerate(plan["edges"])]
    graph = StageGraph(stages, edges, {s: [] for s in stages}, {s: [] for s in stages})
    successors: dict[str, list[str]] = {s: [] for s in stages}
    predecessors: dict[str, list[str]] = {s: [] for s in stages}
    for edge in edges:
        graph.out_edges[edge.src].append(edge)
        if not edge.back_edge:
            graph.in_forward[edge.dst].append(edge)
            successors[edge.src].append(edge.dst)
            predecessors[edge.dst].append(edge.src)
    for edge in edges:
        if edge.back_edge:
            body = _reachable(edge.dst, successors) & _reachable(edge.src, predecessors)
            graph.loops.append(Loop(edge, frozenset(body)))
    return graph
