"""The graph of a spec level: its nodes (read by NodeReader), its edges (chains, probabilities, loop bounds)
and the shape checks (branch sums, bounded cycles, inputs and outputs, reachability, derived op names)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hetc.errors import Loc
from hetc.spec import Edge, Graph, ModelRef, Node
from hetc.spec.rules import MAX_ITERATIONS, FieldRule
from hetc.spec.values import ValueReader, did_you_mean, fmt
from hetc.spec.yaml_source import YamlList, YamlMap, YamlNode, YamlScalar


def _edge_name(src: str, dst: str) -> str:
    return f"{src} -> {dst}"


@dataclass
class _Endpoint:
    name: str
    loc: Loc



class GraphReader(ValueReader):
    """Reads one graph level; the nodes themselves are NodeReader.node's."""

    def graph(self, nodes_node: YamlNode | None, edges_node: YamlNode | None, where: Loc, context: str,
              visible: Mapping[str, ModelRef], file: str) -> Graph:
        """Nodes and edges of one graph level (the spec, an inline agent graph or an included file)."""
        nodes: dict[str, Node] = {}
        kinds_ok = True
        nodes_map = self.mapping(nodes_node, "nodes") if nodes_node is not None else None
        if nodes_map is not None:
            for key, loc, first in nodes_map.duplicates:
                self.error(loc, f"duplicate node id '{key}'{context} (first defined at line {first.line}; "
                                "YAML keeps only one of them)")
            for node_id, (key_node, value) in nodes_map.entries.items():
                node, ok = self.node(node_id, key_node, value, visible, file)
                kinds_ok &= ok
                if node is not None:
                    nodes[node_id] = node
        if nodes_map is None:  # edges would only repeat that the nodes are missing
            return Graph(nodes, [])
        edges, endpoints_ok = self.edges(edges_node, nodes)
        graph = Graph(nodes, edges)
        self.check_graph(graph, where, context, shape_checks=kinds_ok and endpoints_ok and nodes_map is not None)
        self.fill_upstream_defaults(graph)
        return graph


    # ---- edges ----

    def edges(self, node: YamlNode | None, nodes: dict[str, Node]) -> tuple[list[Edge], bool]:
        """Edges in file order; the flag is False when an endpoint is unknown (shape checks would mislead)."""
        if node is None:
            return [], False
        if not isinstance(node, YamlList):
            self.error(node.loc, f"edges must be a list of 'a -> b' items, got {node.describe()}")
            return [], False
        edges: list[Edge] = []
        seen: dict[tuple[str, str], Loc] = {}
        all_known = True
        for item in node.items:
            parsed = self.edge_item(item)
            if parsed is None:
                all_known = False
                continue
            chain, probability, max_iterations = parsed
            for end in chain:
                if end.name not in nodes:
                    hint = did_you_mean(end.name, list(nodes))
                    self.error(end.loc, f"edge endpoint '{end.name}' is not a node{hint}")
                    all_known = False
            if not all(end.name in nodes for end in chain):
                continue
            for src, dst in itertools.pairwise(chain):
                key = (src.name, dst.name)
                if key in seen:
                    self.error(src.loc, f"duplicate edge '{_edge_name(*key)}' (first at line {seen[key].line})")
                    continue
                seen[key] = src.loc
                edges.append(Edge(src.name, dst.name, src.loc, probability, max_iterations))
        return edges, all_known

    def edge_item(self, item: YamlNode) -> tuple[list[_Endpoint], float, int | None] | None:
        form = "an edge is 'a -> b -> c' or a one-key mapping {'a -> b': {probability: P, max_iterations: N}}"
        if isinstance(item, YamlScalar) and isinstance(item.value, str):
            chain = self.chain(item)
            return (chain, 1.0, None) if chain else None
        if not isinstance(item, YamlMap) or len(item.entries) != 1:
            self.error(item.loc, f"{form}; got {item.describe()}"
                       + (f" with {len(item.entries)} keys" if isinstance(item, YamlMap) else ""))
            return None
        (key, (key_node, value)), = item.entries.items()
        chain = self.chain(key_node)
        if not chain:
            return None
        if len(chain) != 2:
            self.error(key_node.loc, f"edge attributes apply to one edge: write 'a -> b', not a chain of "
                                     f"{len(chain)} nodes")
            return None
        probability, max_iterations = 1.0, None
        context = f"in edge '{_edge_name(chain[0].name, chain[1].name)}'"
        if isinstance(value, YamlScalar) and value.value is None:
            return chain, probability, max_iterations  # `- a -> b:` with nothing after it
        attrs = self.mapping(value, f"the attributes of edge '{key}'")
        if attrs is None:
            return None
        found = self.keys(attrs, context, ("probability", "max_iterations"))
        ok = True
        if "probability" in found:
            p_node = found["probability"][1]
            p = self.number(p_node, FieldRule("probability", "number", unit="a probability in (0, 1]"))
            if p is not None and p > 1:
                self.error(p_node.loc, f"probability must be in (0, 1], got {p_node.text}")
                p = None
            ok &= p is not None
            probability = p if p is not None else 1.0
        if "max_iterations" in found:
            max_iterations = self.number(found["max_iterations"][1],
                                         FieldRule("max_iterations", "int", unit="iterations",
                                                   limit=MAX_ITERATIONS))
            ok &= max_iterations is not None
        if not ok:
            return None
        return chain, probability, max_iterations

    def chain(self, node: YamlScalar) -> list[_Endpoint] | None:
        text = node.text
        if "->" not in text:
            self.error(node.loc, f"edge '{text}' has no '->'; write 'source -> target'")
            return None
        ends: list[_Endpoint] = []
        offset = 0
        first_col = node.loc.col + (1 if node.quoted else 0)
        for part in text.split("->"):
            name = part.strip()
            start = offset + (len(part) - len(part.lstrip()))
            loc = Loc(node.loc.file, node.loc.line, first_col + start)
            if not name:
                self.error(loc, f"edge '{text}' has an empty node name")
                return None
            ends.append(_Endpoint(name, loc))
            offset += len(part) + 2
        return ends

    # ---- graph shape ----

    def check_graph(self, graph: Graph, where: Loc, context: str, shape_checks: bool) -> None:
        nodes, edges = graph.nodes, graph.edges
        self.check_derived_names(nodes)
        successors: dict[str, list[str]] = {n: [] for n in nodes}
        predecessors: dict[str, list[str]] = {n: [] for n in nodes}
        branches_out: dict[str, list[Edge]] = {n: [] for n in nodes}
        for edge in edges:
            successors[edge.src].append(edge.dst)
            predecessors[edge.dst].append(edge.src)
            if edge.probability < 1:
                branches_out[edge.src].append(edge)
        # branch probabilities
        for node_id, branches in branches_out.items():
            total = sum(e.probability for e in branches)
            if total > 1 + 1e-9:
                parts = " + ".join(f"{fmt(e.probability)} ({e.dst})" for e in branches)
                self.error(branches[0].loc, f"the conditional branches out of '{node_id}' have probabilities "
                                            f"summing to {fmt(round(total, 9))} > 1: {parts}")
        # loop bounds: every max_iterations edge must close a cycle (its ends in one strongly connected
        # component: the edge's end reaches its start); every cycle needs one
        component = {n: i for i, comp in enumerate(strongly_connected(nodes, successors)) for n in comp}
        for edge in edges:
            if edge.max_iterations is not None and component[edge.src] != component[edge.dst]:
                self.error(edge.loc, f"max_iterations on edge '{_edge_name(edge.src, edge.dst)}', which closes no "
                                     f"cycle ('{edge.src}' is not reachable from '{edge.dst}'); put it on the edge "
                                     "that loops back")
        for closing, cycle in _unbounded_cycles(nodes, edges):
            self.error(closing.loc, f"unbounded cycle {' -> '.join(cycle)}: add max_iterations to one of its edges")
        if not shape_checks:
            return
        kinds = {n: node.kind for n, node in nodes.items()}
        inputs = [n for n, k in kinds.items() if k == "input"]
        outputs = [n for n, k in kinds.items() if k == "output"]
        if not inputs:
            self.error(where, f"the graph{context} has no input node (kind: input)")
        if not outputs:
            self.error(where, f"the graph{context} has no output node (kind: output)")
        for edge in edges:
            if kinds[edge.dst] == "input":
                self.error(edge.loc, f"edge '{_edge_name(edge.src, edge.dst)}' enters input node '{edge.dst}'; "
                                     "inputs have no incoming edges")
            if kinds[edge.src] == "output":
                self.error(edge.loc, f"edge '{_edge_name(edge.src, edge.dst)}' leaves output node '{edge.src}'; "
                                     "outputs have no outgoing edges")
        if not inputs or not outputs:
            return
        from_input = reachable(successors, inputs)
        to_output = reachable(predecessors, outputs)
        for node_id, node in nodes.items():
            if node_id not in from_input and node_id not in to_output:
                self.error(node.loc, f"node '{node_id}' is disconnected: no input reaches it and it reaches no output")
            elif node_id not in from_input:
                self.error(node.loc, f"node '{node_id}' is not reachable from any input")
            elif node_id not in to_output:
                self.error(node.loc, f"node '{node_id}' does not reach any output")

    def check_derived_names(self, nodes: Mapping[str, Node]) -> None:
        """hetc names the ops a node becomes `<id>.<part>` (answer.prefill, answer.decode) and the nodes of a
        nested agent `<agent>/<node>`, so `<id>.` and `<id>/` belong to node <id>: another id starting
        that way would collide with them in the IR and the plan."""
        for node_id, node in nodes.items():
            for at, char in enumerate(node_id):
                owner = nodes.get(node_id[:at]) if char in "./" else None
                if owner is not None:
                    parts = "the ops" if char == "." else "the nodes inside"
                    self.error(node.loc, f"node id '{node_id}' collides with the names hetc gives {parts} of node "
                                         f"'{owner.id}' (line {owner.loc.line}): '{owner.id}{char}<part>'; rename "
                                         "one of them")
                    break

    @staticmethod
    def fill_upstream_defaults(graph: Graph) -> None:
        """speech_to_text.audio_seconds defaults to the audio input feeding it (else 10 s)."""
        feeding: dict[str, list[str]] = {}
        for edge in graph.edges:
            feeding.setdefault(edge.dst, []).append(edge.src)
        for node in graph.nodes.values():
            if node.kind == "speech_to_text" and node.attrs.get("audio_seconds", 0) is None:
                sources = [graph.nodes[src] for src in feeding.get(node.id, ())]
                known = [s.attrs["audio_seconds"] for s in sources
                         if s.kind == "input" and s.attrs.get("produces") == "audio" and s.attrs.get("audio_seconds")]
                node.attrs["audio_seconds"] = max(known) if known else 10.0


def reachable(adjacency: Mapping[str, list[str]], starts: Sequence[str]) -> set[str]:
    seen, stack = set(starts), list(starts)
    while stack:
        for nxt in adjacency[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def strongly_connected(nodes: Iterable[str], successors: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each found after every component it reaches (iterative: a
    spec may hold thousands of nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors[root]))]
        while work:
            node, pending = work[-1]
            for nxt in pending:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(successors[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:  # every successor seen: the node is done
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while not comp or comp[-1] != node:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.append(member)
                    comps.append(comp)
    return comps


def _unbounded_cycles(nodes: Mapping[str, Any], edges: Sequence[Edge]) -> list[tuple[Edge, list[str]]]:
    """Cycles made of edges without max_iterations: one per back edge of a depth-first search in file order.

    The back edges of a DFS break every cycle, so reporting the cycle each one closes lists every place a
    bound is missing (a cycle may also share edges with another one reported).
    """
    outgoing: dict[str, list[Edge]] = {n: [] for n in nodes}
    for edge in edges:
        if edge.max_iterations is None:
            outgoing[edge.src].append(edge)
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = finished
    found: list[tuple[Edge, list[str]]] = []
    for root in nodes:
        if root in state:
            continue
        path = [root]
        pending = [iter(outgoing[root])]  # iterative: a spec may hold thousands of nodes
        state[root] = 1
        while pending:
            edge = next(pending[-1], None)
            if edge is None:
                state[path.pop()] = 2
                pending.pop()
                continue
            if state.get(edge.dst) == 1:
                found.append((edge, [*path[path.index(edge.dst):], edge.dst]))
            elif edge.dst not in state:
                state[edge.dst] = 1
                path.append(edge.dst)
                pending.append(iter(outgoing[edge.dst]))
    return found
