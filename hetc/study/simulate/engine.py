"""The simulator's event loop and each request's state machine: tokens along edges, joins, loop passes,
and the queues and servers of every service model (docs/plan.md, "Simulation semantics")."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from hetc.errors import HetcError, Loc
from hetc.study.simulate.stages import SERVICE_BATCH, SERVICE_FIXED, SERVICE_NONE, SERVICE_TRANSFER, Stage, stage_graph

PROGRESS_EVERY = 2000  # completed requests between progress callbacks
# Work bound: a run simulates at most MAX_EVENTS events (arrivals, service completions, decode steps, edge
# deliveries, pass ends), a few minutes of CPU; inputs that need more are refused before the run (exit 2).
# EVENTS_PER_S: bench/simulate.py, 739 k events/s uncontended before the loop rewrite, which costs ~1.4x
# (bench/README.md); used only to tell the user the time a refused run would take.
MAX_EVENTS = 50_000_000
EVENTS_PER_S = 500_000


class _LoopRun:
    """One request's running instance of a loop: its pass, the back-edge tokens of this pass, held exits."""

    __slots__ = ("passes", "received", "fired", "held")

    def __init__(self) -> None:
        self.passes = 0
        self.received = 0
        self.fired: dict[int, float] = {}  # back edge -> time its live token reaches the header
        self.held: dict[int, bool] = {}  # edge leaving the loop -> the last pass's token (live?)


class Simulation:
    def __init__(self, plan: dict[str, Any], arrival_s: np.ndarray, input_tokens: np.ndarray,
                 output_tokens: np.ndarray, seed: int, progress: Callable[[int, int], None] | None,
                 max_events: int = MAX_EVENTS):
        n_stages = len(plan["stages"])
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2 * n_stages)]
        self.stages = [Stage(i, spec, streams[2 * i], streams[2 * i + 1]) for i, spec in enumerate(plan["stages"])]
        self.graph = graph = stage_graph(plan)
        self._wire(plan)
        self.sources = [(self.stages[v], graph.arrival_live[v]) for v in graph.sources]
        # per loop: stages no token reaches in its later passes (only back edges of other loops feed them);
        # each gets a skip when a pass starts, as the request's arrival sends one in the first pass
        self.pass_skips = [[self.stages[v] for v in sorted(loop.body) if not graph.pred[v]
                            and all(graph.owner[i] != loop.index for i in graph.in_edges[v])]
                           for loop in graph.loops]
        self.top_items = len(graph.top_items)
        self.arrival_ms = (arrival_s * 1e3).tolist()
        self.input_tokens = input_tokens.tolist()
        self.output_tokens = output_tokens.tolist()
        n = len(self.arrival_ms)
        self.n_requests = n
        self.done_ms = [math.nan] * n
        self.ttft_ms = [math.nan] * n
        self.tbt_ms = [math.nan] * n
        self.llm_start_ms = [0.0] * n
        self.items_left = [0] * n  # top-level stages and loops not yet run or skipped
        self.joins: dict[tuple[int, int], list] = {}  # (request, stage) -> [tokens still due, any live]
        self.runs: dict[tuple[int, int], _LoopRun] = {}  # (request, loop) -> its running instance
        self.heap: list[tuple[float, int, Callable[..., None], Any, Any]] = []
        self.ready: deque[tuple[Stage, int, float, bool]] = deque()  # tokens delivered now, not yet handled
        self.seq = 0
        self.events = 0
        self.max_events = max_events
        self.completed = 0
        self.progress = progress

    # ------------------------------------------------------------------ wiring: routing tables per stage
    def _wire(self, plan: dict[str, Any]) -> None:
        graph = self.graph
        self.edge_dst = [self.stages[e.dst] for e in graph.edges]
        self.edge_delay = [float(e["predicted_ms"]) for e in plan["edges"]]
        for stage in self.stages:
            v = stage.index
            cumulative = 0.0
            for i in graph.out_edges[v]:
                p = graph.edges[i].probability
                if p < 1.0:
                    cumulative += p
                    stage.branch_out.append((cumulative, i))
                else:
                    stage.plain_out.append(i)
            if cumulative > 1.0 + 1e-9:
                raise HetcError(f"branch probabilities leaving stage {stage.id!r} sum to {cumulative:.6g} > 1",
                                Loc("plan.json"))
            stage.chain = graph.chain[v]
            stage.alive_until = [graph.loops[m].alive_until[v] for m in stage.chain]
            stage.top = not stage.chain
            ins = graph.in_edges[v]
            if not stage.chain:
                stage.static_needed = len(ins) or 1
            else:  # which in-edges deliver in a pass depends on the passes of the loops they enter
                stage.in_rules = [(tuple(graph.enters[i]), graph.owner[i]) for i in ins]
                if not graph.pred[v]:
                    stage.in_rules.append((tuple(stage.chain), -1))  # the request's arrival

    # ------------------------------------------------------------------ event loop
    def push(self, time_ms: float, handler: Callable[..., None], a: Any, b: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (time_ms, self.seq, handler, a, b))

    def run(self) -> None:
        heap, arrivals, ready = self.heap, self.arrival_ms, self.ready
        n, next_arrival = self.n_requests, 0
        heappop = heapq.heappop
        events, budget = 0, self.max_events
        while events < budget:
            if next_arrival < n and (not heap or arrivals[next_arrival] <= heap[0][0]):
                request = next_arrival
                next_arrival += 1
                events += 1
                time_ms = arrivals[request]
                self.items_left[request] = self.top_items
                for source, live in self.sources:
                    self.join(source, request, time_ms, live)
                self.drain()
                continue
            if not heap:
                break
            time_ms, _, handler, a, b = heappop(heap)
            events += 1
            handler(time_ms, a, b)
            if ready:
                self.drain()
        self.events = events
        self.unarrived = n - next_arrival

    def item_done(self, request: int, time_ms: float) -> None:
        """A top-level stage or loop of the request ran or was skipped; the request is done when none is left."""
        left = self.items_left[request] - 1
        self.items_left[request] = left
        if left == 0:
            self.done_ms[request] = time_ms
            self.completed += 1
            if self.progress is not None and self.completed % PROGRESS_EVERY == 0:
                self.progress(self.completed, self.n_requests)

    def passes(self, request: int, loop: int) -> int:
        run = self.runs.get((request, loop))
        return run.passes if run is not None else 0

    # ------------------------------------------------------------------ tokens
    def _needed(self, stage: Stage, request: int) -> int:
        """In-edges of the stage that deliver in the current pass: those entering a loop only on its first
        pass, a loop's back edges only on its later passes."""
        needed = 0
        for entered, owner in stage.in_rules:
            if owner >= 0 and self.passes(request, owner) == 0:
                continue
            if all(self.passes(request, m) == 0 for m in entered):
                needed += 1
        return needed or 1

    def join(self, stage: Stage, request: int, time_ms: float, live: bool) -> None:
        """A token (live, or a skip) reaches the stage now. Tokens are queued and handled in order after the
        current event (no recursion along a graph's depth)."""
        self.ready.append((stage, request, time_ms, live))

    def drain(self) -> None:
        ready = self.ready
        while ready:
            self._join(*ready.popleft())

    def _join(self, stage: Stage, request: int, time_ms: float, live: bool) -> None:
        """The stage runs or is skipped once every token due in this pass is in."""
        key = (request, stage.index)
        state = self.joins.get(key)
        if state is None:
            needed = stage.static_needed if stage.top or len(stage.in_rules) < 2 else self._needed(stage, request)
            if needed > 1:
                self.joins[key] = [needed - 1, live]
                return
        else:
            state[0] -= 1
            state[1] = state[1] or live
            if state[0] > 0:
                return
            del self.joins[key]
            live = state[1]
        if live and not stage.top:
            for loop, until in zip(stage.chain, stage.alive_until, strict=True):
                if self.passes(request, loop) >= until:
                    live = False  # no later pass can use its result: the work is not done
                    break
        if live:
            self.enqueue(stage, request, time_ms)
            return
        for i in stage.plain_out:
            self.send(i, request, time_ms, False)
        for _, i in stage.branch_out:
            self.send(i, request, time_ms, False)
        self.resolved(stage, request, time_ms)

    def resolved(self, stage: Stage, request: int, time_ms: float) -> None:
        if stage.top:
            self.item_done(request, time_ms)

    def send(self, edge: int, request: int, time_ms: float, live: bool) -> None:
        exits = self.graph.exits[edge]
        if exits:
            self._run(request, exits[0]).held[edge] = live
        else:
            self.transmit(edge, request, time_ms, live)

    def _run(self, request: int, loop: int) -> _LoopRun:
        run = self.runs.get((request, loop))
        if run is None:
            run = self.runs[(request, loop)] = _LoopRun()
        return run

    def transmit(self, edge: int, request: int, time_ms: float, live: bool) -> None:
        owner = self.graph.owner[edge]
        if owner >= 0:
            self.back_token(owner, edge, request, time_ms, live)
        elif live and self.edge_delay[edge] > 0.0:
            self.push(time_ms + self.edge_delay[edge], self._arrive, edge, request)
        else:
            self.join(self.edge_dst[edge], request, time_ms, live)

    def _arrive(self, time_ms: float, edge: int, request: int) -> None:
        self.join(self.edge_dst[edge], request, time_ms, True)

    def back_token(self, loop: int, edge: int, request: int, time_ms: float, live: bool) -> None:
        """A back edge of the loop delivers this pass's token; the pass ends when all of them have."""
        run = self._run(request, loop)
        run.received += 1
        if live and run.passes < self.graph.edges[edge].bound:
            run.fired[edge] = time_ms + self.edge_delay[edge]
        if run.received == len(self.graph.loops[loop].back):
            # decided after the tokens of this event are handled: the pass's exits are all held by then
            self.push(time_ms, self._end_pass, loop, request)

    def _end_pass(self, time_ms: float, loop: int, request: int) -> None:
        """Every back edge of the loop delivered: another pass if any fired, else the loop ends."""
        run = self.runs[(request, loop)]
        spec = self.graph.loops[loop]
        if run.fired:
            fired, run.fired = run.fired, {}
            run.passes += 1
            run.received = 0
            for stage in self.pass_skips[loop]:
                self.join(stage, request, time_ms, False)
            for i in spec.back:
                ready_ms = fired.get(i)
                if ready_ms is None:
                    self.join(self.edge_dst[i], request, time_ms, False)
                elif ready_ms > time_ms:
                    self.push(ready_ms, self._arrive, i, request)
                else:
                    self.join(self.edge_dst[i], request, time_ms, True)
            return
        del self.runs[(request, loop)]  # the loop ends: its results leave, the next entry starts afresh
        for i in sorted(run.held):
            exits = self.graph.exits[i]
            at = exits.index(loop)
            if at + 1 < len(exits):
                self._run(request, exits[at + 1]).held[i] = run.held[i]
            else:
                self.transmit(i, request, time_ms, run.held[i])
        if spec.parent is None:
            self.item_done(request, time_ms)

    def route(self, stage: Stage, request: int, time_ms: float) -> None:
        """The stage finished the request: tokens along its out edges, one draw among its branches."""
        for i in stage.plain_out:
            self.send(i, request, time_ms, True)
        if stage.branch_out:
            draw = stage.draw_uniform()
            taken = -1
            for cumulative, i in stage.branch_out:
                if draw < cumulative:
                    taken = i
                    break
            for _, i in stage.branch_out:
                self.send(i, request, time_ms, i == taken)

    def finish(self, stage: Stage, request: int, time_ms: float) -> None:
        self.route(stage, request, time_ms)
        self.resolved(stage, request, time_ms)

    # ------------------------------------------------------------------ stages
    def enqueue(self, stage: Stage, request: int, time_ms: float) -> None:
        stage.visits += 1
        if stage.kind == "prefill":
            self.llm_start_ms[request] = time_ms
        kind = stage.service_type
        if kind == SERVICE_NONE:
            self.finish(stage, request, time_ms)
            return
        if kind == SERVICE_FIXED or kind == SERVICE_TRANSFER:
            if stage.busy < stage.servers:
                self._start_single(stage, request, time_ms)
            else:
                stage.queue.append((request, time_ms))
                stage.max_queue = max(stage.max_queue, len(stage.queue))
            return
        stage.queue.append((request, time_ms))
        stage.max_queue = max(stage.max_queue, len(stage.queue))
        if kind == SERVICE_BATCH:
            if stage.busy < stage.replicas:
                self._start_batch(stage, time_ms)
        elif stage.idle_replicas:
            self._start_step(stage, heapq.heappop(stage.idle_replicas), time_ms)
        elif len(stage.step_count) < stage.replicas:
            self._start_step(stage, stage.new_replica(), time_ms)

    def _token_scale(self, stage: Stage, request: int) -> float:
        tokens = self.input_tokens[request]
        if tokens and stage.nominal_input_tokens:
            return tokens / stage.nominal_input_tokens
        return 1.0

    def _start_single(self, stage: Stage, request: int, time_ms: float) -> None:
        stage.busy += 1
        if stage.service_type == SERVICE_FIXED:
            service_ms = stage.draw_lognormal_ms() if stage.sigma > 0.0 else stage.latency_ms
        else:
            service_ms = stage.latency_ms + stage.transfer_ms * self._token_scale(stage, request) * stage.concurrency
        stage.busy_ms += service_ms
        self.push(time_ms + service_ms, self._single_done, stage, request)

    def _single_done(self, time_ms: float, stage: Stage, request: int) -> None:
        stage.busy -= 1
        if stage.queue:
            waiting, since_ms = stage.queue.popleft()
            self._note_wait(stage, time_ms - since_ms)
            self._start_single(stage, waiting, time_ms)
        self.finish(stage, request, time_ms)

    @staticmethod
    def _note_wait(stage: Stage, wait_ms: float) -> None:
        stage.wait_ms += wait_ms
        stage.max_wait_ms = max(stage.max_wait_ms, wait_ms)

    def _start_batch(self, stage: Stage, time_ms: float) -> None:
        take = min(len(stage.queue), stage.max_batch)
        items = []
        work_items = 0.0
        for _ in range(take):
            request, since_ms = stage.queue.popleft()
            self._note_wait(stage, time_ms - since_ms)
            items.append(request)
            work_items += self._token_scale(stage, request)
        stage.busy += 1
        stage.batches += 1
        stage.batch_items += take
        service_ms = stage.ms_base + stage.ms_per_item * work_items
        stage.busy_ms += service_ms
        self.push(time_ms + service_ms, self._batch_done, stage, items)

    def _batch_done(self, time_ms: float, stage: Stage, items: list[int]) -> None:
        stage.busy -= 1
        if stage.queue:
            self._start_batch(stage, time_ms)
        for request in items:
            self.finish(stage, request, time_ms)

    def _start_step(self, stage: Stage, replica: int, time_ms: float) -> None:
        """Admit waiting sequences up to max_batch, then run one decode step (or go idle)."""
        queue, active = stage.queue, stage.active[replica]
        n_active = stage.n_active[replica]
        if queue and n_active < stage.max_batch:
            admitted = stage.admitted[replica]
            step = stage.step_count[replica]
            outputs = self.output_tokens
            while queue and n_active < stage.max_batch:
                request, since_ms = queue.popleft()
                self._note_wait(stage, time_ms - since_ms)
                tokens = outputs[request] or stage.output_tokens
                heapq.heappush(active, (step + tokens, request))
                stage.first_token[request] = (0.0, tokens)
                admitted.append(request)
                n_active += 1
            stage.n_active[replica] = n_active
        if n_active == 0:
            heapq.heappush(stage.idle_replicas, replica)
            return
        step_ms = stage.step_ms_base + stage.step_ms_per_seq * n_active
        stage.busy_ms += step_ms
        stage.seq_ms += step_ms * n_active
        self.push(time_ms + step_ms, self._step_done, stage, replica)

    def _step_done(self, time_ms: float, stage: Stage, replica: int) -> None:
        step = stage.step_count[replica] + 1
        stage.step_count[replica] = step
        admitted = stage.admitted[replica]
        if admitted:
            for request in admitted:
                stage.first_token[request] = (time_ms, stage.first_token[request][1])
                ttft = time_ms - self.llm_start_ms[request]
                if not ttft <= self.ttft_ms[request]:  # also replaces NaN
                    self.ttft_ms[request] = ttft
            admitted.clear()
        active = stage.active[replica]
        while active and active[0][0] == step:
            _, request = heapq.heappop(active)
            stage.n_active[replica] -= 1
            first_ms, tokens = stage.first_token.pop(request)
            tbt = (time_ms - first_ms) / (tokens - 1) if tokens > 1 else 0.0
            if not tbt <= self.tbt_ms[request]:
                self.tbt_ms[request] = tbt
            self.finish(stage, request, time_ms)
        self._start_step(stage, replica, time_ms)
