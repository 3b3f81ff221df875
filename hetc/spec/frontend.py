"""Frontend: typed spec -> `agent` dialect module.

Nodes become ops named by their ids, edges become SSA operands. Strongly connected components (loops
closed by edges with max_iterations) become `agent.loop` ops whose body holds the component; edges taken
with a probability below one pass through an `agent.branch`. Nested agents become their own
`agent.graph` and an `agent.call`. Every op carries the YAML location of its node.
"""

from __future__ import annotations

import heapq
from dataclasses import fields

from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FileLineColLoc,
    Float64Type,
    FloatAttr,
    IntAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from hetc.dialects import agent as A
from hetc.dialects.spec_fields import node_fields
from hetc.errors import Diagnostic, HetcError, Loc
from hetc.model.models import ModelArch
from hetc.spec import Edge, Graph, Node, Spec
from hetc.spec.fields import NODE_OPS
from hetc.spec.graph import strongly_connected


def _i64(v: int) -> IntegerAttr:
    return IntegerAttr(int(v), i64)


def _f64(v: float) -> FloatAttr:
    return FloatAttr(float(v), Float64Type())


def _loc(loc: Loc) -> FileLineColLoc:
    return FileLineColLoc(StringAttr(loc.file), IntAttr(max(loc.line, 0)), IntAttr(max(loc.col, 0)))


def attr_from_value(value) -> Attribute:
    """A builtin attribute for a JSON-like Python value (None entries of dicts are dropped)."""
    if isinstance(value, bool):
        return _i64(int(value))
    if isinstance(value, int):
        return _i64(value)
    if isinstance(value, float):
        return _f64(value)
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, dict):
        return DictionaryAttr({str(k): attr_from_value(v) for k, v in sorted(value.items()) if v is not None})
    if isinstance(value, (list, tuple)):
        return ArrayAttr([attr_from_value(v) for v in value])
    raise TypeError(f"no attribute for {value!r}")


def value_from_attr(attr: Attribute):
    """Inverse of attr_from_value."""
    if isinstance(attr, DictionaryAttr):
        return {k: value_from_attr(v) for k, v in attr.data.items()}
    if isinstance(attr, ArrayAttr):
        return [value_from_attr(v) for v in attr.data]
    if isinstance(attr, (IntegerAttr, FloatAttr)):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    raise TypeError(f"no value for {attr}")


def arch_attr(arch: ModelArch) -> A.ArchAttr:
    return A.ArchAttr({f.name: getattr(arch, f.name) for f in fields(ModelArch)})


def arch_from_attr(attr: A.ArchAttr, name: str) -> ModelArch:
    """Inverse of arch_attr, used by passes that need the model numbers. `name` (the agent.model symbol)
    stands in where the arch names none, as in the verifier: hand-written IR may leave it out."""
    return attr.model_arch(name)


# A spec field's value as the property its op declares (FieldRule.type -> attribute); False flags are left out.
_PROPERTY_VALUE = {"int": _i64, "bool": lambda _: _i64(1), "number": _f64, "string": StringAttr,
                   "choice": StringAttr, "model": SymbolRefAttr}


class _GraphBuilder:
    def __init__(self, spec: Spec, module_ops: list[Operation], graph_name: str, graph: Graph):
        self.spec = spec
        self.module_ops = module_ops
        self.graph_name = graph_name
        self.graph = graph
        self.errors: list[Diagnostic] = []
        self.incoming: dict[str, list[Edge]] = {n: [] for n in graph.nodes}
        self.outgoing: dict[str, list[Edge]] = {n: [] for n in graph.nodes}
        for edge in graph.edges:
            self.incoming[edge.dst].append(edge)
            self.outgoing[edge.src].append(edge)
        self.used_names = set(graph.nodes)
        self.payload_cache: dict[str, str] = {}  # compute node -> the payload it passes on (see _payload_of)

    # ----------------------------------------------------------------------------- structure

    def _components(self) -> list[list[str]]:
        """Strongly connected components, in a topological order of the condensation, file order on ties."""
        order = {n: i for i, n in enumerate(self.graph.nodes)}
        successors = {n: [edge.dst for edge in out] for n, out in self.outgoing.items()}
        comps = [sorted(comp, key=order.__getitem__) for comp in strongly_connected(self.graph.nodes, successors)]
        comp_of = {n: i for i, c in enumerate(comps) for n in c}
        # Kahn on the condensation, smallest file position first: deterministic and readable.
        succs: dict[int, set[int]] = {i: set() for i in range(len(comps))}
        indegree = [0] * len(comps)
        for edge in self.graph.edges:
            a, b = comp_of[edge.src], comp_of[edge.dst]
            if a != b and b not in succs[a]:
                succs[a].add(b)
                indegree[b] += 1
        ready = [(order[comps[i][0]], i) for i in range(len(comps)) if indegree[i] == 0]
        heapq.heapify(ready)
        result: list[list[str]] = []
        while ready:
            _, best = heapq.heappop(ready)
            result.append(comps[best])
            for nxt in succs[best]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    heapq.heappush(ready, (order[comps[nxt][0]], nxt))
        return result

    def _is_cycle(self, comp: list[str]) -> bool:
        return len(comp) > 1 or any(e.dst == comp[0] for e in self.outgoing[comp[0]])

    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            k += 1
            name = f"{base}#{k}"
        self.used_names.add(name)
        return name

    # ----------------------------------------------------------------------------- values

    def _edge_value(self, edge: Edge, env: dict[str, SSAValue], block: Block) -> SSAValue:
        value = env[edge.src]
        if edge.probability < 1.0:
            branch = A.BranchOp.build(
                operands=[[value]], result_types=[value.type],
                properties={"sym_name": StringAttr(self._unique(f"{edge.src}->{edge.dst}")),
                            "probability": _f64(edge.probability)})
            branch.location = _loc(edge.loc)
            block.add_op(branch)
            value = branch.results[0]
        return value

    # ----------------------------------------------------------------------------- build

    def build(self) -> A.GraphOp:
        graph_op = A.GraphOp(self.graph_name)
        block = graph_op.body.block
        env: dict[str, SSAValue] = {}
        for comp in self._components():
            if self._is_cycle(comp):
                self._emit_loop(comp, env, block)
            else:
                node = self.graph.nodes[comp[0]]
                operands = [self._edge_value(e, env, block) for e in self.incoming[node.id]]
                op = self._emit_node(node, operands, block)
                if op is not None and op.results:
                    env[node.id] = op.results[0]
        return graph_op

    def _emit_loop(self, comp: list[str], env: dict[str, SSAValue], block: Block) -> None:
        members = set(comp)
        back = [e for n in comp for e in self.incoming[n] if e.src in members and e.max_iterations]
        entry_edges = [e for n in comp for e in self.incoming[n] if e.src not in members]
        outside_srcs = list(dict.fromkeys(e.src for e in entry_edges))
        exit_nodes = list(dict.fromkeys(n for n in comp for e in self.outgoing[n] if e.dst not in members))
        body = Block(arg_types=[env[s].type for s in outside_srcs])
        inner: dict[str, SSAValue] = {s: arg for s, arg in zip(outside_srcs, body.args, strict=True)}
        loop_name = self._unique(f"{comp[0]}.loop")
        back_ids = {id(e) for e in back}
        ordered = self._order_without(comp, back_ids)
        pending_feedback: list[tuple[Edge, SSAValue]] = []
        for node_id in ordered:
            node = self.graph.nodes[node_id]
            operands = []
            for edge in self.incoming[node_id]:
                if id(edge) in back_ids:
                    arg = body.insert_arg(A.payload_type(self._payload_of(edge.src)), len(body.args))
                    pending_feedback.append((edge, arg))
                    operands.append(arg)
                else:
                    operands.append(self._edge_value(edge, inner, body))
            op = self._emit_node(node, operands, body)
            if op is not None and op.results:
                inner[node_id] = op.results[0]
        feedback_values = [self._edge_value(edge, inner, body) for edge, _ in pending_feedback]
        exits = [inner[n] for n in exit_nodes]
        body.add_op(A.LoopYieldOp(exits, feedback_values))
        loop = A.LoopOp.build(
            operands=[[env[s] for s in outside_srcs]], result_types=[[v.type for v in exits]],
            properties={"sym_name": StringAttr(loop_name),
                        "max_iterations": _i64(max(e.max_iterations for e in back))},
            regions=[Region(body)])
        # each back edge keeps its own bound (the loop's is the largest); hetc/loops.py bounds each
        loop.attributes["feedback_bounds"] = ArrayAttr([_i64(edge.max_iterations) for edge, _ in pending_feedback])
        loop.location = _loc(self.graph.nodes[comp[0]].loc)
        block.add_op(loop)
        for node_id, result in zip(exit_nodes, loop.results, strict=True):
            env[node_id] = result

    def _order_without(self, comp: list[str], back_ids: set[int]) -> list[str]:
        """The loop body in dependency order without its back edges; the earliest in the file first when
        several are ready (Kahn's algorithm with a heap: linear in the body's size)."""
        members = set(comp)
        position = {n: i for i, n in enumerate(comp)}
        waiting = {n: sum(1 for e in self.incoming[n] if e.src in members and id(e) not in back_ids) for n in comp}
        ready = [position[n] for n in comp if waiting[n] == 0]
        heapq.heapify(ready)
        done: list[str] = []
        while ready:
            node_id = comp[heapq.heappop(ready)]
            done.append(node_id)
            for edge in self.outgoing[node_id]:
                if edge.dst in members and id(edge) not in back_ids:
                    waiting[edge.dst] -= 1
                    if waiting[edge.dst] == 0:
                        heapq.heappush(ready, position[edge.dst])
        if len(done) < len(comp):  # the loader guarantees every cycle has a bounded edge
            raise HetcError(f"cycle through {comp[0]!r} has no edge with max_iterations",
                            self.graph.nodes[comp[0]].loc)
        return done

    def _payload_of(self, node_id: str) -> str:
        """The payload a node produces; a node whose op may return any payload (compute) passes on the payload
        of its first input.

        Walks up the chain of first inputs (in a loop: agent graphs may be thousands of nodes deep),
        skipping nodes already on the walk. A walk without skips is the same from every node on it, so
        those results are remembered and each node is walked once.
        """
        path: list[str] = []
        visiting: set[str] = set()
        last_skip = -1
        node_id_now: str | None = node_id
        result = "json"
        while node_id_now is not None:
            if node_id_now in self.payload_cache:
                result = self.payload_cache[node_id_now]
                break
            own = self._own_payload(self.graph.nodes[node_id_now])
            if own is not None:
                result = own
                break
            path.append(node_id_now)
            visiting.add(node_id_now)
            sources = [e.src for e in self.incoming[node_id_now]]
            node_id_now = next((s for s in sources if s not in visiting), None)
            if sources and sources[0] != node_id_now:
                last_skip = len(path) - 1
        for walked in path[last_skip + 1:]:
            self.payload_cache[walked] = result
        return result

    def _payload(self, node: Node) -> str:
        own = self._own_payload(node)
        return self._payload_of(node.id) if own is None else own

    def _own_payload(self, node: Node) -> str | None:
        """The payload the node's op says it produces; None when it passes on its first input's."""
        if node.subgraph is not None:  # a nested agent: what its first output receives
            sub = _GraphBuilder(self.spec, [], "", node.subgraph)
            outputs = [n for n in node.subgraph.nodes.values() if n.kind == "output"]
            srcs = [e.src for e in sub.incoming[outputs[0].id]] if outputs else []
            return sub._payload_of(srcs[0]) if srcs else "json"
        return NODE_OPS[node.kind].spec_payload(node.attrs)

    def _emit_node(self, node: Node, operands: list[SSAValue], block: Block) -> Operation | None:
        """The node's op, its properties the node's fields (node_fields: the rules the loader applied, so
        attrs are complete and no default is repeated here)."""
        op_type = NODE_OPS[node.kind]
        if op_type is A.CallOp:
            return self._emit_call(node, operands, block)
        props: dict[str, Attribute] = {"sym_name": StringAttr(node.id)}
        for prop, rule in node_fields(op_type):
            value = node.model if rule.name == "model" else node.attrs.get(rule.name)
            if prop is not None and value is not None and value is not False:
                props[prop] = _PROPERTY_VALUE[rule.type](value)
        result_types = [A.payload_type(self._payload(node))] if op_type.get_irdl_definition().results else []
        op = op_type.build(operands=[operands], result_types=result_types, properties=props)
        op.location = _loc(node.loc)
        block.add_op(op)
        return op

    def _emit_call(self, node: Node, operands: list[SSAValue], block: Block) -> Operation:
        callee = f"{self.graph_name}/{node.id}"
        sub = _GraphBuilder(self.spec, self.module_ops, callee, node.subgraph).build()
        inputs = [op for op in sub.body.block.ops if isinstance(op, A.InputOp)]
        outputs = [op for op in sub.body.walk() if isinstance(op, A.OutputOp)]
        if len(inputs) != len(operands) or any(i.result.type != v.type for i, v in zip(inputs, operands, strict=True)):
            got = ", ".join(str(v.type) for v in operands) or "nothing"
            want = ", ".join(str(i.result.type) for i in inputs) or "nothing"
            raise HetcError(f"nested agent '{node.id}' takes ({want}) but its edges bring ({got})", node.loc)
        sub.attributes["hetc.subagent"] = UnitAttr()
        self.module_ops.append(sub)
        props = {"sym_name": StringAttr(node.id), "callee": SymbolRefAttr(callee)}
        if node.attrs.get("plan_as_unit"):
            props["plan_as_unit"] = _i64(1)
        op = A.CallOp.build(operands=[operands], result_types=[[o.inputs[0].type for o in outputs]],
                            properties=props)
        op.location = _loc(node.loc)
        block.add_op(op)
        return op


def spec_to_module(spec: Spec) -> ModuleOp:
    """Build and verify the `agent` module for a loaded spec."""
    module_ops: list[Operation] = []
    for model_id, ref in spec.models.items():
        op = A.ModelOp.build(properties={
            "sym_name": StringAttr(model_id), "arch": arch_attr(ref.arch),
            "precision": StringAttr(ref.precision), "kv_precision": StringAttr(ref.kv_precision or ref.precision)})
        op.location = _loc(ref.loc)
        module_ops.append(op)
    graph_name = spec.name if spec.name not in spec.models else f"{spec.name}.agent"  # models share the symbol table
    main = _GraphBuilder(spec, module_ops, graph_name, spec.graph).build()
    main.location = _loc(Loc(spec.path, 1, 1))
    main.attributes.update(graph_attributes(spec))
    module = ModuleOp(module_ops + [main])
    module.attributes["hetc.main"] = SymbolRefAttr(graph_name)
    return module


def graph_attributes(spec: Spec) -> dict[str, Attribute]:
    def ms(value):
        return None if value is None else float(value)

    slo = {"latency_ms": ms(spec.slo.latency_ms), "percentile": spec.slo.percentile,
           "ttft_ms": ms(spec.slo.ttft_ms), "tbt_ms": ms(spec.slo.tbt_ms),
           "percentiles": {p: ms(v) for p, v in spec.slo.latency_percentiles_ms.items()}}
    traffic = {"requests_per_s": ms(spec.traffic.requests_per_s), "objective": spec.traffic.objective,
               **{k: ms(getattr(spec.traffic, k)) for k in ("tokens_per_day", "requests", "deadline_h")}}
    hardware = {"pricing": spec.hardware.pricing,
                "inventory": {k: {"count": v.count, "sunk": v.sunk} for k, v in spec.hardware.inventory.items()}}
    if spec.hardware.pool is not None:
        hardware["pool"] = list(spec.hardware.pool)
    return {"hetc.slo": attr_from_value(slo), "hetc.traffic": attr_from_value(traffic),
            "hetc.hardware": attr_from_value(hardware), "hetc.spec_sha256": StringAttr(spec.source_sha256)}
