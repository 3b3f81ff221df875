"""Turn the neutral LangGraph description (and trace statistics) into hetc spec nodes and edges.

START and END become `input` and `output`; a ToolNode becomes one `tool` node per tool (edges into and out
of it are repeated per tool, a branch's share split evenly between its tools); an LLM-calling node an `llm`
node; a retriever a `memory_lookup`; a subgraph an `agent` node with its own graph; anything else `compute`.
Conditional edges become branches (uniform, or as observed); cycles are closed by their depth-first back
edges, bounded from the recursion limit (or the most passes observed).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field

from hetc.errors import HetcError, Loc
from hetc.importers import defaults as D
from hetc.importers.lg_read import END, START, LGGraph, LGNode, display, unsupported
from hetc.importers.observe import LevelStats
from hetc.spec.graph import reachable

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_ID_LIMIT = 48


@dataclass
class SpecNode:
    id: str
    fields: dict  # kind first; plain values only
    comment: str = ""
    graph: SpecGraph | None = None  # an agent node's subgraph


@dataclass
class SpecEdge:
    src: str
    dst: str
    probability: float = 1.0
    max_iterations: int | None = None
    comment: str = ""


@dataclass
class SpecGraph:
    nodes: list[SpecNode] = field(default_factory=list)
    edges: list[SpecEdge] = field(default_factory=list)


@dataclass
class ModelEntry:
    id: str
    preset: str
    source_name: str  # what the chat model object called itself ("" = nothing)
    max_context: int | None = None  # set when observed token counts need more than the preset's


def safe_id(name: str, fallback: str) -> str:
    """An id made of letters, digits, `_`, `.` and `-` that starts with a letter, digit or `_`: it cannot break
    YAML or an edge (`->`) and reads the same everywhere."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = _UNSAFE.sub("_", ascii_text).strip("_.-")[:_ID_LIMIT].strip("_.-")
    return text or fallback


class _Names:
    """Unique ids within one graph, handed out in a fixed order."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, name: str, fallback: str = "node") -> str:
        base = safe_id(name, fallback)
        candidate, suffix = base, 2
        while candidate.lower() in self.used:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        self.used.add(candidate.lower())
        return candidate


class SpecBuilder:
    def __init__(self, where: str, stats: dict[tuple[str, ...], LevelStats] | None):
        self.where = where
        self.stats = stats
        self.models: dict[str, ModelEntry] = {}  # by source name
        self.model_ids = _Names()
        self.todos: list[str] = []

    def todo(self, path: str, text: str) -> None:
        self.todos.append(f"{path}: {text}")

    # ---- graphs ----

    def graph(self, lg: LGGraph, path: tuple[str, ...] = (), prefix: str = "") -> SpecGraph:
        stats = (self.stats or {}).get(path)
        names = _Names()
        ids: dict[tuple[str, str | None], str] = {(START, None): names.take("start"), (END, None): names.take("end")}
        spec = SpecGraph()
        spec.nodes.append(SpecNode(ids[(START, None)], {"kind": "input", "produces": "text",
                                                          "tokens": D.INPUT_TOKENS}))
        if path == ():
            self.todo(f"nodes.{ids[(START, None)]}", f"tokens = {D.INPUT_TOKENS} (request size, hetc's default)")
        for node in lg.nodes:
            for key in _expand(node):
                ids[key] = names.take(key[1] if key[1] is not None else key[0])
                spec.nodes.append(self.node(node, key, ids[key], path, prefix, stats))
        spec.nodes.append(SpecNode(ids[(END, None)], {"kind": "output"}))
        spec.edges = self.edges(lg, ids, stats, prefix)
        _check_connected(lg, spec, ids, self.where)
        self.close_loops(spec, lg.recursion_limit, stats, ids, prefix)
        return spec

    def node(self, node: LGNode, key, node_id: str, path, prefix: str, stats: LevelStats | None) -> SpecNode:
        where = f"nodes.{prefix}{node_id}"
        named = node_id != node.name and node.kind != "tools"
        described = {"description": f"LangGraph node {display(node.name, quote=False)}"} if named else {}
        if node.kind == "subgraph":
            sub = self.graph(node.subgraph, (*path, node.name), f"{prefix}{node_id}/")
            return SpecNode(node_id, {"kind": "agent", **described}, graph=sub)
        if node.kind == "tools":
            return self.tool(node, key[1], node_id, where, stats)
        if node.kind == "llm":
            return self.llm(node, node_id, where, stats, described)
        if node.kind == "retriever":
            top_k = node.top_k or D.RETRIEVER_TOP_K
            self.todo(where, f"n_vectors = {D.RETRIEVER_VECTORS:,}, dim = {D.RETRIEVER_DIM} (placeholders: the "
                      "vector store's size and width)")
            return SpecNode(node_id, {"kind": "memory_lookup", **described, "n_vectors": D.RETRIEVER_VECTORS,
                                      "dim": D.RETRIEVER_DIM, "top_k": top_k},
                            "TODO: vector store size and width")
        durations = stats.durations.get((node.name, None)) if stats else None
        if durations:
            cpu_ms = max(0.001, round(_median(durations), 3))
            return SpecNode(node_id, {"kind": "compute", **described, "cpu_ms": cpu_ms},
                            f"median wall time of {_count(durations, 'observed run')}")
        self.todo(where, f"cpu_ms = {D.CODE_CPU_MS} (placeholder for Python code; measure it)")
        return SpecNode(node_id, {"kind": "compute", **described, "cpu_ms": D.CODE_CPU_MS}, "TODO: cpu_ms")

    def tool(self, node: LGNode, tool: str, node_id: str, where: str, stats: LevelStats | None) -> SpecNode:
        fields = {"kind": "tool", "tool": safe_id(tool, "tool"),
                  "description": f"tool {display(tool, quote=False)} of LangGraph ToolNode {display(node.name, quote=False)}"}
        latencies = stats.durations.get((node.name, tool)) if stats else None
        if latencies:
            median = max(0.001, round(_median(latencies), 3))
            p99 = max(median, round(_percentile(latencies, 0.99), 3))
            return SpecNode(node_id, {**fields, "latency_ms": median, "latency_p99_ms": p99},
                            f"median and p99 of {_count(latencies, 'observed call')}")
        self.todo(where, f"latency_ms = {D.TOOL_LATENCY_MS}, latency_p99_ms = {D.TOOL_LATENCY_P99_MS} "
                  "(placeholders for an HTTP API call)")
        return SpecNode(node_id, {**fields, "latency_ms": D.TOOL_LATENCY_MS,
                                  "latency_p99_ms": D.TOOL_LATENCY_P99_MS}, "TODO: measured latency")

    def llm(self, node: LGNode, node_id: str, where: str, stats: LevelStats | None, described: dict) -> SpecNode:
        model = self.model(node.models[0])
        seen = stats.tokens.get(node.name) if stats else None
        if seen:
            input_tokens = max(1, round(sum(i for i, _ in seen) / len(seen)))
            output_tokens = max(1, round(sum(o for _, o in seen) / len(seen)))
            comment = f"mean tokens of {_count(seen, 'observed call')}"
            if input_tokens + output_tokens > _context(model):
                model.max_context = max(model.max_context or 0, _round_up(input_tokens + output_tokens, 1024))
                self.todo(f"models.{model.id}", f"max_context raised to {model.max_context} to fit the observed "
                          f"tokens of {node_id}: check the model")
        else:
            input_tokens, output_tokens = D.LLM_INPUT_TOKENS, D.LLM_OUTPUT_TOKENS
            comment = "TODO: token counts"
            self.todo(where, f"input_tokens = {input_tokens}, output_tokens = {output_tokens} (hetc's defaults)")
        if len(node.models) > 1:
            comment += f"; calls {len(node.models)} models, planned with the first"
        return SpecNode(node_id, {"kind": "llm", **described, "model": model.id, "input_tokens": input_tokens,
                                  "output_tokens": output_tokens}, comment)

    def model(self, source_name: str) -> ModelEntry:
        """One model per preset (names of the same architecture share it), else one per name."""
        preset = D.preset_for(source_name) if source_name else None
        key = f"preset:{preset}" if preset else source_name
        if key in self.models:
            return self.models[key]
        entry = ModelEntry(self.model_ids.take(preset or source_name or "chat_model", "chat_model"),
                           preset or D.PLACEHOLDER_PRESET, source_name)
        if preset is None:
            what = f"the chat model {display(source_name)}" if source_name else "a chat model without a model name"
            self.todo(f"models.{entry.id}", f"{what} maps to no hetc preset; {D.PLACEHOLDER_PRESET} stands in "
                      "(give its preset or arch)")
        self.models[key] = entry
        return entry

    # ---- edges ----

    def edges(self, lg: LGGraph, ids: dict, stats: LevelStats | None, prefix: str) -> list[SpecEdge]:
        by_name = {node.name: node for node in lg.nodes}
        conditional_out: dict[str, int] = {}
        for edge in lg.edges:
            if edge.conditional:
                conditional_out[edge.source] = conditional_out.get(edge.source, 0) + 1
        out: list[SpecEdge] = []
        guessed: list[str] = []
        senders: list[str] = []
        for edge in lg.edges:
            sources = _expand(by_name[edge.source]) if edge.source in by_name else [(edge.source, None)]
            targets = _expand(by_name[edge.target]) if edge.target in by_name else [(edge.target, None)]
            share = 1.0 / len(targets)
            if edge.conditional and conditional_out[edge.source] > 1:
                share /= conditional_out[edge.source]
            for src in sources:
                for dst in targets:
                    spec_edge = SpecEdge(ids[src], ids[dst])
                    observed = self.observed(stats, src, dst)
                    if share < 1.0 and observed is not None:
                        spec_edge.probability = observed
                        spec_edge.comment = f"observed in {stats.calls[src]} runs of {ids[src]}"
                    elif share < 1.0:
                        spec_edge.probability = share
                        spec_edge.comment = "TODO: uniform guess" + (" (conditional edge)" if edge.conditional
                                                                      else " (one of a ToolNode's tools)")
                        guessed.append(f"{ids[src]} -> {ids[dst]}")
                    if edge.send and dst[0] != END:
                        spec_edge.comment = _join(spec_edge.comment, self.fan_out(stats, src, dst))
                        if ids[src] not in senders:
                            senders.append(ids[src])
                    out.append(spec_edge)
        where = f"edges of {prefix.rstrip('/') or 'the graph'}"
        if guessed:
            self.todo(where, f"branch probabilities are uniform guesses: {', '.join(guessed)}")
        if senders and not stats:
            self.todo(where, f"{', '.join(senders)} {'fans' if len(senders) == 1 else 'fan'} out with Send (one "
                      "call per Send); hetc plans one call per pass: scale the target's tokens to the fan-out you "
                      "measure")
        _normalise_branches(out)
        return out

    @staticmethod
    def fan_out(stats: LevelStats | None, src, dst) -> str:
        text = "Send fan-out: one call per Send, planned as one"
        width = stats.calls.get(dst, 0) / stats.calls[src] if stats and stats.calls.get(src) else 0.0
        return text + (f" (observed {width:.2f} calls per run of the source)" if width > 1.0 else "")

    @staticmethod
    def observed(stats: LevelStats | None, src, dst) -> float | None:
        if not stats or not stats.calls.get(src):
            return None
        taken = stats.taken.get((src, dst), 0.0) / stats.calls[src]
        return min(1.0, taken)

    def close_loops(self, spec: SpecGraph, limit: int, stats: LevelStats | None, ids: dict, prefix: str) -> None:
        """Bound every cycle at its depth-first back edges: a loop of k nodes passes at most limit // k - 1
        more times within LangGraph's recursion limit (one superstep per node), or the most passes observed."""
        keys = {v: k for k, v in ids.items()}
        for edge, cycle_length in _back_edges(spec):
            counts = stats.per_invocation.get((keys[edge.src], keys[edge.dst])) if stats else None
            where = f"edges.{prefix}{edge.src} -> {edge.dst}"
            if counts:
                edge.max_iterations = max(1, min(D.MAX_ITERATIONS, max(counts)))
                note = f"most passes observed in one run: {max(counts)}"
            else:
                edge.max_iterations = max(1, min(D.MAX_ITERATIONS, limit // cycle_length - 1))
                note = f"TODO: bound from recursion_limit {limit} / {cycle_length} nodes"
                self.todo(where, f"max_iterations = {edge.max_iterations} from LangGraph's recursion limit "
                          f"{limit}; set the real bound")
            edge.comment = _join(edge.comment, note)


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _expand(node: LGNode) -> list[tuple[str, str | None]]:
    if node.kind == "tools":
        return [(node.name, tool) for tool in node.tools]
    return [(node.name, None)]


def _normalise_branches(edges: list[SpecEdge]) -> None:
    """Branches leaving a node sum to at most 1 (probabilities written with 6 decimals, rounded down)."""
    total: dict[str, float] = {}
    for edge in edges:
        if edge.probability < 1.0:
            total[edge.src] = total.get(edge.src, 0.0) + max(edge.probability, 0.001)
    for edge in edges:
        if edge.probability < 1.0:
            scale = min(1.0, 1.0 / total[edge.src])
            edge.probability = max(1e-6, math.floor(max(edge.probability, 0.001) * scale * 1e6) / 1e6)


def _back_edges(spec: SpecGraph) -> list[tuple[SpecEdge, int]]:
    """Edges a depth-first search from the input (edges in order) finds closing a cycle, with the cycle's
    length (nodes on the search path from the edge's target to its source)."""
    outgoing: dict[str, list[SpecEdge]] = {node.id: [] for node in spec.nodes}
    for edge in spec.edges:
        outgoing[edge.src].append(edge)
    found: list[tuple[SpecEdge, int]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done
    for start in (n.id for n in spec.nodes if n.fields["kind"] == "input"):
        if start in state:
            continue
        path = [start]
        state[start] = 1
        pending = [iter(outgoing[start])]
        while pending:
            edge = next(pending[-1], None)
            if edge is None:
                pending.pop()
                state[path.pop()] = 2
            elif state.get(edge.dst) == 1:
                found.append((edge, len(path) - path.index(edge.dst)))
            elif edge.dst not in state:
                state[edge.dst] = 1
                path.append(edge.dst)
                pending.append(iter(outgoing[edge.dst]))
    return found


def _check_connected(lg: LGGraph, spec: SpecGraph, ids: dict, where: str) -> None:
    """Every node is reached from START and reaches END, or LangGraph's drawing missed an edge: a node that
    routes with Command(goto=...) without declaring where, which no plan can follow."""
    names = {v: k[0] for k, v in ids.items()}
    forward: dict[str, list[str]] = {n.id: [] for n in spec.nodes}
    backward: dict[str, list[str]] = {n.id: [] for n in spec.nodes}
    for edge in spec.edges:
        forward[edge.src].append(edge.dst)
        backward[edge.dst].append(edge.src)
    start, end = ids[(START, None)], ids[(END, None)]
    reached, reaching = reachable(forward, [start]), reachable(backward, [end])
    for node in spec.nodes[1:-1]:
        if node.id not in reached:
            raise unsupported(where, names[node.id], "no edge reaches it in LangGraph's graph (routed to with "
                              "Command(goto=...) or Send without declared destinations?); declare them with "
                              "add_node(..., destinations=...) or a Command[Literal[...]] return annotation")
        if node.id not in reaching:
            raise unsupported(where, names[node.id], "it has no path to END in LangGraph's graph (it routes with "
                              "Command(goto=...) without declared destinations?); declare them with "
                              "add_node(..., destinations=...) or a Command[Literal[...]] return annotation")
    if end not in reached:
        raise HetcError("the graph never reaches END in LangGraph's graph", Loc(where))


def _context(model: ModelEntry) -> int:
    from hetc.model.models import resolve_preset

    return model.max_context or resolve_preset(model.preset).max_context


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
