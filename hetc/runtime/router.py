"""One request through the agent graph: fan-out, joins, run-time branches, bounded loops, a deadline.

The router walks the plan's stage graph (graph.py) and calls each stage through an executor (in-process
workers, or Ray Serve deployment handles). Branches are decided by what a stage produced: an LLM's tool calls
select the branch edges to the nodes they name (each branch target is offered to the model as a tool), a code
node returns the branch it takes; the spec's probabilities are for planning only. While a stage continues a
loop (a taken edge stays in the loop's body, or is its back edge), its edges leaving the loop wait; once the
loop's `max_iterations` are spent its continue edges are no longer offered, so a model that always asks for
more gets a last turn without tools. A filter (a guardrail) that lets the input pass takes every edge leaving
it; one that refuses ends the request with its refusal as the answer (`refused`, no outputs). Every failure
ends the request with a structured error; the deadline
(the plan's end-to-end SLO unless the bindings or the request give one) bounds every request.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from hetc.bundle.kubernetes import PROCESSLESS_KINDS as ROUTER_KINDS  # no process: the router passes them on
from hetc.runtime.graph import Edge, StageGraph, stage_graph

DEFAULT_DEADLINE_MS = 60_000.0  # when the plan has no end-to-end SLO
SKIP = None  # what a branch not taken delivers
DEFAULT_TOOL_PARAMETERS = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


class Executor(Protocol):
    def stream(self, stage_id: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...


class Refused(Exception):
    """A stage refused the request (a guardrail's unsafe verdict): it ends with that refusal as its answer."""

    def __init__(self, refusal: dict[str, Any]):
        super().__init__(refusal.get("stage", ""))
        self.refusal = refusal


class RequestError(Exception):
    """A request that ended without an answer; `error` is the structured body returned to the client."""

    def __init__(self, kind: str, message: str, request_id: str, stage: str | None = None):
        super().__init__(message)
        self.error = {"type": kind, "message": message, "request_id": request_id, "stage": stage}


def tool_name(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", node)[:64] or "tool"


class Router:
    def __init__(self, plan: dict[str, Any], bindings: dict[str, Any], executor: Executor, metrics=None):
        self.plan, self.bindings, self.executor, self.metrics = plan, bindings, executor, metrics
        self.graph: StageGraph = stage_graph(plan)
        slo_ms = plan["slo"]["latency_ms"]
        self.deadline_ms = float(bindings.get("request_timeout_ms") or slo_ms or DEFAULT_DEADLINE_MS)
        self.tools: dict[str, dict[str, Any]] = {}  # node -> OpenAI tool description
        for edge in self.graph.edges:
            if edge.is_branch or (edge.back_edge and edge.probability < 1):
                node = self.graph.stages[edge.dst]["node"]
                binding = bindings["nodes"].get(node, {})
                self.tools[node] = {"type": "function", "function": {
                    "name": binding.get("name") or tool_name(node),
                    "description": binding.get("description") or f"Run the agent's {node} step.",
                    "parameters": binding.get("parameters") or DEFAULT_TOOL_PARAMETERS}}
        self.tool_nodes = {spec["function"]["name"]: node for node, spec in self.tools.items()}

    async def run(self, inputs: str | dict[str, str], *, request_id: str | None = None,
                  deadline_ms: float | None = None, emit: Callable[[dict], None] | None = None) -> dict[str, Any]:
        request_id = request_id or uuid.uuid4().hex
        budget_ms = min(self.deadline_ms, deadline_ms) if deadline_ms else self.deadline_ms
        run = _Run(self, request_id, time.monotonic() + budget_ms / 1000, emit or (lambda event: None))
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(run.execute(inputs), budget_ms / 1000)
        except Refused as refused:  # the answer is the refusal; nothing else of the request runs on
            result = {**run.result(), "outputs": {}, "refused": refused.refusal}
            self._count(run, "refused", started)
            result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
            return result
        except TimeoutError:
            waiting = sorted(run.running)
            error = RequestError("deadline_exceeded", f"no answer within the {budget_ms:g} ms deadline; "
                                 f"still running: {', '.join(waiting) or 'nothing'}", request_id,
                                 waiting[0] if waiting else None)
            self._count(run, "deadline_exceeded", started)
            raise error from None
        except RequestError as error:
            self._count(run, error.error["type"], started)
            raise
        finally:
            run.cancel()
        self._count(run, "ok", started)
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    def _count(self, run: _Run, outcome: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.request_done(outcome, time.perf_counter() - started, run.visits)


class _Run:
    """The state of one request: what each stage has received, loop counts, LLM conversations."""

    def __init__(self, router: Router, request_id: str, deadline: float, emit: Callable[[dict], None]):
        self.router, self.graph, self.request_id = router, router.graph, request_id
        self.deadline, self.emit = deadline, emit
        self.need = {s: [e.index for e in self.graph.in_forward[s]] for s in self.graph.stages}
        self.arrived: dict[str, dict[int, Any]] = {s: {} for s in self.graph.stages}
        self.back_taken: Counter[int] = Counter()
        self.visits: Counter[str] = Counter()
        self.conversations: dict[str, list[dict[str, Any]]] = {}
        self.outputs: dict[str, str | None] = {}
        self.audio: dict[str, str] = {}  # output node -> base64 audio (a text-to-speech stage fed it)
        self.tasks: set[asyncio.Task] = set()
        self.running: set[str] = set()

    # -------------------------------------------------------------------------------------- the walk

    async def execute(self, inputs: str | dict[str, str]) -> dict[str, Any]:
        for stage in self.graph.inputs:
            node = self.graph.stages[stage]["node"]
            text = inputs if isinstance(inputs, str) else inputs.get(node)
            if text is None:
                raise RequestError("bad_request", f"no input for input node {node!r}", self.request_id, stage)
            self.visits[stage] += 1
            self._after(stage, {"text": text})
        while self.tasks:
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self.tasks.discard(task)
                stage, value = task.result()
                self.running.discard(stage)
                self._after(stage, value)
        missing = [s for s in self.graph.outputs if self.graph.stages[s]["node"] not in self.outputs]
        if missing:
            waiting = sorted(s for s, got in self.arrived.items() if got)
            raise RequestError("stalled", f"outputs {', '.join(missing)} got no value; waiting: "
                               f"{', '.join(waiting) or 'nothing'}", self.request_id)
        return self.result()

    def result(self) -> dict[str, Any]:
        """The answer: outputs, stage visits, loop counts (and audio a text-to-speech stage made)."""
        result = {"request_id": self.request_id,
                  "outputs": {node: text for node, text in self.outputs.items() if text is not None},
                  "visits": dict(sorted(self.visits.items())),
                  "loops": {f"{e.src}->{e.dst}": self.back_taken[e.index] for e in self.graph.edges if e.back_edge}}
        if self.audio:
            result["audio"] = dict(sorted(self.audio.items()))
        return result

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    def _deliver(self, edge: Edge, value: Any) -> None:
        self.arrived[edge.dst][edge.index] = value
        if all(i in self.arrived[edge.dst] for i in self.need[edge.dst]):
            self._start(edge.dst)

    def _start(self, stage: str) -> None:
        values = [self.arrived[stage][i] for i in self.need[stage]]
        self.arrived[stage] = {}
        kind = self.graph.stages[stage]["kind"]
        inputs = [v for v in values if v is not SKIP]
        if not inputs:  # every input skipped: so is this stage
            if kind == "output":
                self.outputs.setdefault(self.graph.stages[stage]["node"], None)
            for edge in self.graph.out_edges[stage]:
                if not edge.back_edge:
                    self._deliver(edge, SKIP)
            return
        self.visits[stage] += 1
        if kind == "output":
            from hetc.runtime.workers import merge_inputs

            merged = merge_inputs(inputs)
            self.outputs[self.graph.stages[stage]["node"]] = merged["text"]
            if "audio_base64" in merged:
                self.audio[self.graph.stages[stage]["node"]] = merged["audio_base64"]
        elif kind in ROUTER_KINDS:
            self._after(stage, {k: v for k, v in inputs[-1].items() if k != "messages"})
        else:
            self.running.add(stage)
            self.tasks.add(asyncio.get_running_loop().create_task(self._invoke(stage, inputs)))

    async def _invoke(self, stage: str, inputs: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        info = self.graph.stages[stage]
        payload: dict[str, Any] = {"request_id": self.request_id, "stage": stage, "node": info["node"],
                                   "inputs": inputs, "deadline_s": max(self.deadline - time.monotonic(), 0.001)}
        if info["kind"] in ("prefill", "decode"):
            payload["messages"] = self.conversations.get(info["node"])
        if info["kind"] == "decode":
            payload["tools"] = [self.router.tools[n] for n in sorted(self._offered(stage))]
        metrics, started = self.router.metrics, time.perf_counter()
        if metrics is not None:
            metrics.stage_started(stage)
        result: dict[str, Any] = {"error": {"type": "stage_failed", "stage": stage, "message": "no result"}}
        try:
            async for event in self.router.executor.stream(stage, payload):
                if "token" in event:
                    self.emit({"event": "token", "stage": stage, "node": info["node"], "text": event["token"]})
                else:
                    result = event["result"]
        finally:
            if metrics is not None:
                metrics.stage_finished(stage, time.perf_counter() - started, result)
        self.emit({"event": "stage", "stage": stage, "node": info["node"],
                   "ms": round((time.perf_counter() - started) * 1000, 3), "ok": "error" not in result})
        return stage, result

    # -------------------------------------------------------------------------------- branches, loops

    def _spent(self, edge: Edge) -> bool:
        """The edge would continue a loop whose iterations are used up."""
        return any(self.back_taken[loop.edge.index] >= loop.edge.max_iterations
                   for loop in self.graph.loops_of_edge(edge))

    def _offered(self, stage: str) -> set[str]:
        """Branch targets (nodes) a stage may still choose."""
        return {self.graph.stages[e.dst]["node"] for e in self.graph.out_edges[stage]
                if (e.is_branch or (e.back_edge and e.probability < 1)) and not self._spent(e)}

    def _choices(self, stage: str, value: dict[str, Any]) -> tuple[set[str] | None, dict[str, dict]]:
        """(nodes the stage chose, per-node values for the chosen edges) from what it produced."""
        offered = self._offered(stage)
        if "tool_calls" in value:
            per_node: dict[str, dict] = {}
            for call in value["tool_calls"]:
                node = self.router.tool_nodes.get(call["function"]["name"])
                if node in offered and node not in per_node:
                    try:
                        arguments = json.loads(call["function"]["arguments"] or "{}")
                    except ValueError:
                        arguments = {"query": call["function"]["arguments"]}
                    if not isinstance(arguments, dict):
                        arguments = {"query": arguments}
                    per_node[node] = {"text": json.dumps(arguments, sort_keys=True),
                                      "tool_call": {"id": call["id"], "name": call["function"]["name"],
                                                    "arguments": arguments}}
            executed = {v["tool_call"]["id"] for v in per_node.values()}
            conversation = self.conversations.get(self.graph.stages[stage]["node"], [])
            if conversation and conversation[-1].get("tool_calls"):  # answer only the calls that run
                kept = [c for c in conversation[-1]["tool_calls"] if c["id"] in executed]
                conversation[-1] = {**conversation[-1], "tool_calls": kept} if kept else \
                    {k: v for k, v in conversation[-1].items() if k != "tool_calls"}
            return set(per_node), per_node
        if "branch" in value:
            return {n for n in value["branch"] if n in offered}, {}
        if value.get("screened"):  # a filter let the input pass: on along every edge (the plan's share passed)
            return offered, {}
        return None, {}

    def _after(self, stage: str, value: dict[str, Any]) -> None:
        if "error" in value:
            error = value["error"]
            raise RequestError(error.get("type", "stage_failed"), error.get("message", ""), self.request_id,
                               error.get("stage", stage))
        if "refusal" in value:
            raise Refused(value["refusal"])
        node = self.graph.stages[stage]["node"]
        if "messages" in value:
            self.conversations[node] = value["messages"]
        chosen, per_node = self._choices(stage, value)
        plain = {k: v for k, v in value.items()
                 if k not in ("messages", "tool_calls", "branch", "batch_size", "screened")}
        taken: list[Edge] = []
        for edge in self.graph.out_edges[stage]:
            target = self.graph.stages[edge.dst]["node"]
            if edge.back_edge:
                ok = self.back_taken[edge.index] < edge.max_iterations
                if ok and (edge.probability == 1 or (chosen is not None and target in chosen)):
                    taken.append(edge)
            elif edge.is_branch:
                if chosen is not None and target in chosen and not self._spent(edge):
                    taken.append(edge)
            else:
                taken.append(edge)
        held = {e.index for t in taken if t.is_branch or t.back_edge for loop in self.graph.loops_of_edge(t)
                for e in self.graph.out_edges[stage]
                if not e.back_edge and not e.is_branch and e.dst not in loop.body}
        for edge in self.graph.out_edges[stage]:
            target = self.graph.stages[edge.dst]["node"]
            if edge.back_edge:
                if edge in taken:
                    self._reenter(edge, plain)
            elif edge.index in held:
                continue  # the loop goes on: its result leaves when it ends
            elif edge in taken:
                self._deliver(edge, per_node.get(target, plain))
            else:
                self._deliver(edge, SKIP)

    def _reenter(self, edge: Edge, value: dict[str, Any]) -> None:
        """Take a back edge: the loop's body starts a new pass fed only from inside the loop."""
        self.back_taken[edge.index] += 1
        for loop in self.graph.loops:
            if loop.edge is edge:
                for stage in loop.body:
                    self.arrived[stage] = {}
                    self.need[stage] = [e.index for e in self.graph.in_forward[stage] if e.src in loop.body]
        self.need[edge.dst] = [edge.index]
        self._deliver(edge, value)
