"""Discrete-event simulation of a run plan under load: does the placed plan meet its SLA?

The model (docs/plan.md, "Simulation semantics", is the reference):
- Requests arrive by a Poisson process (or from a trace file) at the plan's source stages.
- Every stage has `replicas` servers and one FIFO queue. Service models (stage["service"]["type"]):
  none (zero time), fixed (median latency_ms, lognormal when latency_p99_ms is given, `concurrency` calls
  per replica), batch (a free replica takes up to max_batch waiting items: ms_base + ms_per_item * items),
  continuous (decode: sequences join and leave a running batch at step boundaries; a step takes
  step_ms_base + step_ms_per_seq * batch and gives every sequence one token), transfer (a KV move:
  latency_ms + bytes / bandwidth_gbs on `concurrency` channels per replica).
- Edges delay a token by predicted_ms. Branches (probability < 1) and loops (back edges with
  max_iterations) are drawn per request and per visit. A loop's results leave it once, when it ends.
- Per request: end-to-end latency, TTFT (entry into a prefill stage -> first token of the decode that
  follows) and TBT (mean time between tokens of one decode), each the worst over the request's LLM calls.

Same plan, same options, same seed: the same numbers (numpy Generators spawned from one SeedSequence;
ties in the event heap are broken by a sequence number).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hetc.errors import HetcError, Loc

Z_99 = 2.3263478740408408  # standard normal quantile at 0.99: lognormal sigma = ln(p99/median) / Z_99
DRAW_CHUNK = 4096  # random numbers drawn per refill: amortises numpy call overhead in the event loop
PROGRESS_EVERY = 2000  # completed requests between progress callbacks
SPEC_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}

SERVICE_NONE, SERVICE_FIXED, SERVICE_BATCH, SERVICE_CONTINUOUS, SERVICE_TRANSFER = range(5)
_SERVICE_CODES = {"none": SERVICE_NONE, "fixed": SERVICE_FIXED, "batch": SERVICE_BATCH,
                  "continuous": SERVICE_CONTINUOUS, "transfer": SERVICE_TRANSFER}


# ----------------------------------------------------------------------------------------------- trace


@dataclass(frozen=True)
class Trace:
    """Arrival times (s) and per-request token counts (0 = use the plan's nominal count)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


def load_trace(path: str | Path) -> Trace:
    """Read a trace: CSV with header `arrival_s[,input_tokens][,output_tokens]`, or JSON Lines with those keys."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise HetcError(f"cannot read trace: {exc.strerror or exc}", Loc(str(path))) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        import json

        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HetcError(f"not valid JSON: {exc.msg}", Loc(str(path), number, exc.colno)) from None
            if not isinstance(record, dict):
                raise HetcError("expected an object like {\"arrival_s\": 0.5}", Loc(str(path), number, 1))
            rows.append((number, record))
    else:
        header_at = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")), None)
        if header_at is None:
            raise HetcError("empty trace: expected a header line `arrival_s,input_tokens,output_tokens`",
                            Loc(str(path)))
        columns = [c.strip() for c in lines[header_at].split(",")]
        for number, line in enumerate(lines[header_at + 1:], header_at + 2):
            if not line.strip() or line.startswith("#"):
                continue
            cells = [c.strip() for c in line.split(",")]
            if len(cells) != len(columns):
                raise HetcError(f"expected {len(columns)} comma-separated values ({','.join(columns)}), "
                                f"got {len(cells)}", Loc(str(path), number, 1))
            rows.append((number, {c: v for c, v in zip(columns, cells, strict=True) if v != ""}))
    unknown = sorted({k for _, r in rows for k in r} - {"arrival_s", "input_tokens", "output_tokens"})
    if unknown:
        raise HetcError(f"unknown trace field {unknown[0]!r}: expected arrival_s, input_tokens, output_tokens",
                        Loc(str(path), rows[0][0] if rows else 0, 1))
    if not rows:
        raise HetcError("the trace has no requests", Loc(str(path)))
    arrivals, inputs, outputs = [], [], []
    previous = 0.0
    for number, record in rows:
        arrival = _trace_number(record, "arrival_s", float, path, number, required=True)
        if arrival < previous:
            raise HetcError(f"arrival_s {arrival} is earlier than the previous request's {previous}: "
                            "expected non-decreasing, non-negative times", Loc(str(path), number, 1))
        previous = arrival
        arrivals.append(arrival)
        inputs.append(_trace_number(record, "input_tokens", int, path, number))
        outputs.append(_trace_number(record, "output_tokens", int, path, number))
    return Trace(np.asarray(arrivals, dtype=float), np.asarray(inputs, dtype=np.int64),
                 np.asarray(outputs, dtype=np.int64))


def _trace_number(record: dict[str, Any], key: str, kind: type, path: Path, line: int,
                  required: bool = False) -> Any:
    if key not in record:
        if required:
            raise HetcError(f"missing {key}", Loc(str(path), line, 1))
        return 0
    value = record[key]
    try:
        number = kind(value)
        if kind is int and isinstance(value, str) and not value.strip().isdigit():
            raise ValueError
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and value != int(value)):
            raise ValueError
    except (TypeError, ValueError):
        raise HetcError(f"{key}: expected a {'whole' if kind is int else ''} number, got {value!r}",
                        Loc(str(path), line, 1)) from None
    if not math.isfinite(number) or number < 0 or (kind is int and number == 0):
        raise HetcError(f"{key}: expected a {'positive' if kind is int else 'non-negative'} number, got {value!r}",
                        Loc(str(path), line, 1))
    return number


# ------------------------------------------------------------------------------------------ the model


class _Stage:
    """Runtime state of one stage: its queue, servers, random streams and counters."""

    def __init__(self, index: int, spec: dict[str, Any], rng_service: np.random.Generator,
                 rng_branch: np.random.Generator):
        service = spec["service"]
        self.index = index
        self.id: str = spec["id"]
        self.kind: str = spec["kind"]
        self.service_type = _SERVICE_CODES[service["type"]]
        self.replicas: int = spec["replicas"]
        self.concurrency: int = int(service.get("concurrency", 1))
        self.servers = self.replicas * (self.concurrency if self.service_type in (SERVICE_FIXED, SERVICE_TRANSFER)
                                        else 1)
        self.queue: deque[tuple[int, float]] = deque()
        self.busy = 0  # fixed/transfer: busy servers; batch: busy replicas
        # service parameters (ms)
        self.latency_ms = float(service.get("latency_ms", 0.0))
        p99 = service.get("latency_p99_ms")
        self.sigma = math.log(p99 / self.latency_ms) / Z_99 if p99 and self.latency_ms > 0 and p99 > self.latency_ms else 0.0
        self.mu = math.log(self.latency_ms) if self.latency_ms > 0 else 0.0
        self.ms_base = float(service.get("ms_base", 0.0))
        self.ms_per_item = float(service.get("ms_per_item", 0.0))
        self.max_batch = int(service.get("max_batch", 1))
        self.nominal_input_tokens = service.get("input_tokens") or 0
        self.step_ms_base = float(service.get("step_ms_base", 0.0))
        self.step_ms_per_seq = float(service.get("step_ms_per_seq", 0.0))
        self.output_tokens = int(service.get("output_tokens", 1))
        bandwidth_bytes_per_ms = float(service.get("bandwidth_gbs", 1.0)) * 1e9 / 1e3
        self.transfer_ms = float(service.get("bytes", 0.0)) / bandwidth_bytes_per_ms
        # routing, filled by _wire()
        self.n_forward_in = 0
        # dst, delay_ms, p, max_iterations, loop, loops it exits (inner loops first)
        self.back_out: list[tuple[_Stage, float, float, int, int, frozenset[int]]] = []
        # cumulative p, dst, delay_ms, loop continued, loop whose end the token waits for (-1: none), loops it exits
        self.branch_out: list[tuple[float, _Stage, float, int, int, frozenset[int]]] = []
        self.plain_out: list[tuple[_Stage, float, frozenset[int], int]] = []  # dst, delay_ms, loops it exits, waits
        self.forward_dsts: list[tuple[_Stage, float, int]] = []  # dst, delay_ms, loop whose end it waits for
        self.closes: list[int] = []  # loops whose back edge leaves this stage: they end when it does not loop
        # (loop, forward inputs from inside its body) per loop whose body holds this stage, innermost first:
        # after a loop's first pass only its own stages feed the join again (outside inputs are loop-invariant)
        self.loop_inputs: list[tuple[int, int]] = []
        # random streams, refilled in chunks
        self._rng_service = rng_service
        self._rng_branch = rng_branch
        self._lognormal: list[float] = []
        self._uniform: list[float] = []
        # continuous batching replicas
        self.idle_replicas: list[int] = list(range(self.replicas))
        self.step_count = [0] * self.replicas
        self.active: list[list[tuple[int, int]]] = [[] for _ in range(self.replicas)]  # heap of (last step, request)
        self.n_active = [0] * self.replicas
        self.admitted: list[list[int]] = [[] for _ in range(self.replicas)]
        self.first_token: dict[int, tuple[float, int]] = {}
        # counters
        self.visits = 0
        self.wait_ms = 0.0
        self.max_wait_ms = 0.0
        self.max_queue = 0
        self.busy_ms = 0.0  # server-ms (fixed/transfer), replica-ms (batch/continuous)
        self.batches = 0
        self.batch_items = 0
        self.seq_ms = 0.0  # continuous: sum over steps of step time * batch, for the mean batch

    def draw_lognormal_ms(self) -> float:
        if not self._lognormal:
            self._lognormal = self._rng_service.lognormal(self.mu, self.sigma, DRAW_CHUNK).tolist()
        return self._lognormal.pop()

    def draw_uniform(self) -> float:
        if not self._uniform:
            self._uniform = self._rng_branch.random(DRAW_CHUNK).tolist()
        return self._uniform.pop()


def _loop_bodies(plan: dict[str, Any]) -> list[set[str]]:
    """For every back edge src -> dst: the stages on a forward path from dst to src (the loop body)."""
    succ: dict[str, list[str]] = {s["id"]: [] for s in plan["stages"]}
    pred: dict[str, list[str]] = {s["id"]: [] for s in plan["stages"]}
    for edge in plan["edges"]:
        if not edge["back_edge"]:
            succ[edge["src"]].append(edge["dst"])
            pred[edge["dst"]].append(edge["src"])
    bodies = []
    for edge in plan["edges"]:
        if edge["back_edge"]:
            bodies.append(_closure(succ, edge["dst"]) & _closure(pred, edge["src"]))
    return bodies


def _edge_cuts_loop(plan: dict[str, Any], body: set[str], back_edge: dict[str, Any], cut: dict[str, Any]) -> bool:
    """Whether every forward path in the loop body from its header to its back edge's source uses `cut`."""
    succ: dict[str, list[str]] = {stage: [] for stage in body}
    for edge in plan["edges"]:
        if not edge["back_edge"] and edge is not cut and edge["src"] in body and edge["dst"] in body:
            succ[edge["src"]].append(edge["dst"])
    return back_edge["src"] not in _closure(succ, back_edge["dst"])


def _closure(graph: dict[str, list[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def analytic_capacity(plan: dict[str, Any]) -> tuple[float | None, str | None]:
    """The placement's predicted capacity: min over stages of replicas * throughput_rps / expected invocations."""
    best: tuple[float | None, str | None] = (None, None)
    for stage in plan["stages"]:
        throughput = stage["predicted"].get("throughput_rps")
        expected = stage["invocations"]["expected"]
        if stage["service"]["type"] == "none" or not throughput or expected <= 0:
            continue
        capacity = stage["replicas"] * throughput / expected
        if best[0] is None or capacity < best[0]:
            best = (capacity, stage["id"])
    return best


# ---------------------------------------------------------------------------------------- simulation


class _Simulation:
    def __init__(self, plan: dict[str, Any], arrival_s: np.ndarray, input_tokens: np.ndarray,
                 output_tokens: np.ndarray, seed: int, progress: Callable[[int, int], None] | None):
        n_stages = len(plan["stages"])
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2 * n_stages)]
        self.stages = [_Stage(i, spec, streams[2 * i], streams[2 * i + 1]) for i, spec in enumerate(plan["stages"])]
        self.by_id = {s.id: s for s in self.stages}
        self._wire(plan)
        self.sources = [s for s in self.stages if s.n_forward_in == 0]
        self.arrival_ms = (arrival_s * 1e3).tolist()
        self.input_tokens = input_tokens.tolist()
        self.output_tokens = output_tokens.tolist()
        n = len(self.arrival_ms)
        self.n_requests = n
        self.done_ms = [math.nan] * n
        self.ttft_ms = [math.nan] * n
        self.tbt_ms = [math.nan] * n
        self.llm_start_ms = [0.0] * n
        self.outstanding = [0] * n
        self.loop_counts: dict[int, list[int]] = {}
        self.joins: dict[tuple[int, int], tuple[int, bool]] = {}
        # (request, loop) -> tokens leaving the loop, by destination stage, sent when the loop ends
        self.held: dict[tuple[int, int], dict[int, tuple[_Stage, float, bool]]] = {}
        self.ended: set[tuple[int, int]] = set()  # (request, loop) whose loop has ended (until an outer pass)
        self.heap: list[tuple[float, int, Callable[..., None], Any, Any]] = []
        self.seq = 0
        self.events = 0
        self.completed = 0
        self.progress = progress

    # ------------------------------------------------------------------ wiring: routing tables per stage
    def _wire(self, plan: dict[str, Any]) -> None:
        bodies = _loop_bodies(plan)
        self.loop_max = [e["max_iterations"] for e in plan["edges"] if e["back_edge"]]
        self.n_loops = len(bodies)
        back_index = 0
        cumulative: dict[str, float] = {}
        deciders: list[set[str]] = [set() for _ in bodies]
        loop_edges = [e for e in plan["edges"] if e["back_edge"]]
        forward = []
        for edge in plan["edges"]:
            src, dst = self.by_id[edge["src"]], self.by_id[edge["dst"]]
            delay_ms = float(edge["predicted_ms"])
            probability = float(edge["probability"])
            if edge["back_edge"]:
                exits = frozenset(i for i, b in enumerate(bodies) if src.id in b and dst.id not in b)
                src.back_out.append((dst, delay_ms, probability, int(edge["max_iterations"]), back_index, exits))
                src.closes.append(back_index)
                deciders[back_index].add(src.id)
                back_index += 1
                continue
            # the innermost loop whose body holds both ends: taking a branch along this edge continues it when
            # every pass to the loop's back edge goes through the edge (else the back edge decides alone)
            inside = [(len(b), i) for i, b in enumerate(bodies) if src.id in b and dst.id in b]
            continued = min(inside)[1] if inside and probability < 1.0 else -1
            if continued >= 0 and not _edge_cuts_loop(plan, bodies[continued], loop_edges[continued], edge):
                continued = -1
            if continued >= 0:
                deciders[continued].add(src.id)
            forward.append((src, dst, delay_ms, probability, continued))
        for stage in self.by_id.values():  # an inner loop draws first; while it goes on, outer ones wait
            stage.back_out.sort(key=lambda back: (len(bodies[back[4]]), back[4]))
        # the loops inside each loop: their iteration counts start again on each pass of the outer loop
        self.inner_loops = [[j for j, inner in enumerate(bodies) if j != i and inner < body]
                            for i, body in enumerate(bodies)]
        sources: dict[str, list[str]] = {}
        for src, dst, *_ in forward:
            sources.setdefault(dst.id, []).append(src.id)
        for index in sorted(range(len(bodies)), key=lambda i: len(bodies[i])):
            body = bodies[index]
            for stage_id in sorted(body):
                inside = sum(1 for src_id in sources.get(stage_id, []) if src_id in body)
                self.by_id[stage_id].loop_inputs.append((index, inside))
        for src, dst, delay_ms, probability, continued in forward:
            exits = frozenset(i for i, b in enumerate(bodies) if src.id in b and dst.id not in b)
            # An edge leaving a loop from a stage that does not draw whether the loop goes on (its back edge,
            # or a branch that continues it) carries the loop's result: it is sent once, when the loop ends
            # (the outermost such loop it leaves), which its back-edge source decides.
            waiting = [(len(bodies[i]), i) for i in exits if src.id not in deciders[i]]
            waits = max(waiting)[1] if waiting else -1
            dst.n_forward_in += 1
            src.forward_dsts.append((dst, delay_ms, waits))
            if probability < 1.0:
                cumulative[src.id] = cumulative.get(src.id, 0.0) + probability
                src.branch_out.append((cumulative[src.id], dst, delay_ms, continued, waits, exits))
            else:
                src.plain_out.append((dst, delay_ms, exits, waits))
        for stage_id, total in cumulative.items():
            if total > 1.0 + 1e-9:
                raise HetcError(f"branch probabilities leaving stage {stage_id!r} sum to {total:.6g} > 1",
                                Loc("plan.json"))

    # ------------------------------------------------------------------ event loop
    def push(self, time_ms: float, handler: Callable[..., None], a: Any, b: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (time_ms, self.seq, handler, a, b))

    def run(self) -> None:
        heap, arrivals = self.heap, self.arrival_ms
        n, next_arrival = self.n_requests, 0
        heappop = heapq.heappop
        events = 0
        while True:
            if next_arrival < n and (not heap or arrivals[next_arrival] <= heap[0][0]):
                request = next_arrival
                next_arrival += 1
                events += 1
                time_ms = arrivals[request]
                self.outstanding[request] = 1  # held until every source is fed
                for source in self.sources:
                    self.enqueue(source, request, time_ms)
                self.release(request, time_ms)
                continue
            if not heap:
                break
            time_ms, _, handler, a, b = heappop(heap)
            events += 1
            handler(time_ms, a, b)
        self.events = events

    def release(self, request: int, time_ms: float) -> None:
        """One unit of the request's outstanding work finished; the request is done when none is left."""
        left = self.outstanding[request] - 1
        self.outstanding[request] = left
        if left == 0:
            self.done_ms[request] = time_ms
            self.completed += 1
            if self.progress is not None and self.completed % PROGRESS_EVERY == 0:
                self.progress(self.completed, self.n_requests)

    # ------------------------------------------------------------------ tokens along edges
    def send(self, dst: _Stage, request: int, time_ms: float, delay_ms: float, back: bool) -> None:
        if delay_ms > 0.0:
            self.outstanding[request] += 1
            self.push(time_ms + delay_ms, self._arrive_back if back else self._arrive, dst, request)
        elif back:
            self.enqueue(dst, request, time_ms)
        else:
            self.deliver(dst, request, time_ms, True)

    def _arrive(self, time_ms: float, dst: _Stage, request: int) -> None:
        self.deliver(dst, request, time_ms, True)
        self.release(request, time_ms)

    def _arrive_back(self, time_ms: float, dst: _Stage, request: int) -> None:
        self.enqueue(dst, request, time_ms)
        self.release(request, time_ms)

    def deliver(self, dst: _Stage, request: int, time_ms: float, live: bool) -> None:
        """A forward token (live, or dead from a branch not taken) reaches dst; joins wait for all inputs."""
        if dst.n_forward_in > 1:
            needed = dst.n_forward_in
            counts = self.loop_counts.get(request) if dst.loop_inputs else None
            if counts is not None:
                needed = next((inside for loop, inside in dst.loop_inputs if counts[loop] > 0), needed)
            key = (request, dst.index)
            count, any_live = self.joins.pop(key, (0, False))
            count += 1
            any_live = any_live or live
            if count < needed:
                self.joins[key] = (count, any_live)
                return
            live = any_live
        if live:
            self.enqueue(dst, request, time_ms)
            return
        for nxt, delay_ms, waits in dst.forward_dsts:  # a skipped stage skips what only it feeds
            if waits >= 0:
                self.hold(request, waits, nxt, delay_ms, False, time_ms)
            else:
                self.deliver(nxt, request, time_ms, False)
        for loop in dst.closes:  # a skipped back-edge source ends its loop
            self.end_loop(request, loop, time_ms)

    def hold(self, request: int, loop: int, dst: _Stage, delay_ms: float, live: bool, time_ms: float) -> None:
        """Keep a token leaving `loop` until the loop ends; a later iteration's token replaces it. A token
        produced after the loop ended (a skip reaching it after the decision) goes on at once."""
        if (request, loop) in self.ended:
            if live:
                self.send(dst, request, time_ms, delay_ms, False)
            else:
                self.deliver(dst, request, time_ms, False)
            return
        held = self.held.get((request, loop))
        if held is None:
            held = self.held[(request, loop)] = {}
            self.outstanding[request] += 1
        held[dst.index] = (dst, delay_ms, live)

    def end_loop(self, request: int, loop: int, time_ms: float) -> None:
        self.ended.add((request, loop))
        held = self.held.pop((request, loop), None)
        if held is None:
            return
        for dst, delay_ms, live in held.values():
            if live:
                self.send(dst, request, time_ms, delay_ms, False)
            else:
                self.deliver(dst, request, time_ms, False)
        self.release(request, time_ms)

    def route(self, stage: _Stage, request: int, time_ms: float) -> None:
        """The stage finished the request: send tokens along its out edges (loops and branches drawn here)."""
        continuing: set[int] = set()
        counts = None
        if stage.back_out or stage.branch_out:
            counts = self.loop_counts.get(request)
            if counts is None:
                counts = self.loop_counts[request] = [0] * self.n_loops
        for dst, delay_ms, probability, max_iterations, loop, exits in stage.back_out:
            if continuing and not continuing.isdisjoint(exits):
                continue  # an inner loop goes on: this outer back edge is drawn on its last pass
            if counts[loop] < max_iterations and (probability >= 1.0 or stage.draw_uniform() < probability):
                counts[loop] += 1
                for inner in self.inner_loops[loop]:
                    counts[inner] = 0
                    self.ended.discard((request, inner))
                continuing.add(loop)
                self.send(dst, request, time_ms, delay_ms, True)
        if stage.branch_out:
            draw = stage.draw_uniform()
            taken = None
            for edge in stage.branch_out:
                if draw < edge[0]:
                    taken = edge
                    break
            if taken is not None and taken[3] >= 0:
                if counts[taken[3]] >= self.loop_max[taken[3]]:
                    taken = None  # the loop is at its bound: leave it
                else:
                    continuing.add(taken[3])
            for edge in stage.branch_out:
                if edge[4] >= 0:
                    self.hold(request, edge[4], edge[1], edge[2], edge is taken, time_ms)
                elif continuing and not continuing.isdisjoint(edge[5]):
                    continue  # the request stays in the loop: this exit is drawn again on the last pass
                elif edge is taken:
                    self.send(edge[1], request, time_ms, edge[2], False)
                else:
                    self.deliver(edge[1], request, time_ms, False)
        for dst, delay_ms, exits, waits in stage.plain_out:
            if waits >= 0:
                self.hold(request, waits, dst, delay_ms, True, time_ms)
            elif continuing and not continuing.isdisjoint(exits):
                continue  # the request stays in the loop; it leaves through this edge on a later pass
            else:
                self.send(dst, request, time_ms, delay_ms, False)
        for loop in stage.closes:
            if loop not in continuing:
                self.end_loop(request, loop, time_ms)

    def finish(self, stage: _Stage, request: int, time_ms: float) -> None:
        self.route(stage, request, time_ms)
        self.release(request, time_ms)

    # ------------------------------------------------------------------ stages
    def enqueue(self, stage: _Stage, request: int, time_ms: float) -> None:
        self.outstanding[request] += 1
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

    def _token_scale(self, stage: _Stage, request: int) -> float:
        tokens = self.input_tokens[request]
        if tokens and stage.nominal_input_tokens:
            return tokens / stage.nominal_input_tokens
        return 1.0

    def _start_single(self, stage: _Stage, request: int, time_ms: float) -> None:
        stage.busy += 1
        if stage.service_type == SERVICE_FIXED:
            service_ms = stage.draw_lognormal_ms() if stage.sigma > 0.0 else stage.latency_ms
        else:
            service_ms = stage.latency_ms + stage.transfer_ms * self._token_scale(stage, request) * stage.concurrency
        stage.busy_ms += service_ms
        self.push(time_ms + service_ms, self._single_done, stage, request)

    def _single_done(self, time_ms: float, stage: _Stage, request: int) -> None:
        stage.busy -= 1
        if stage.queue:
            waiting, since_ms = stage.queue.popleft()
            self._note_wait(stage, time_ms - since_ms)
            self._start_single(stage, waiting, time_ms)
        self.finish(stage, request, time_ms)

    @staticmethod
    def _note_wait(stage: _Stage, wait_ms: float) -> None:
        stage.wait_ms += wait_ms
        stage.max_wait_ms = max(stage.max_wait_ms, wait_ms)

    def _start_batch(self, stage: _Stage, time_ms: float) -> None:
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

    def _batch_done(self, time_ms: float, stage: _Stage, items: list[int]) -> None:
        stage.busy -= 1
        if stage.queue:
            self._start_batch(stage, time_ms)
        for request in items:
            self.finish(stage, request, time_ms)

    def _start_step(self, stage: _Stage, replica: int, time_ms: float) -> None:
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

    def _step_done(self, time_ms: float, stage: _Stage, replica: int) -> None:
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


# -------------------------------------------------------------------------------------------- reports


def _percentiles(values: np.ndarray) -> dict[str, float] | None:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": _round(p50), "p90": _round(p90), "p99": _round(p99), "mean": _round(values.mean()),
            "max": _round(values.max())}


def _round(value: float, digits: int = 3) -> float:
    return float(round(float(value), digits))


def simulate(plan: dict[str, Any], *, rate_rps: float | None = None, duration_s: float = 60.0, seed: int = 0,
             trace: Trace | None = None, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate a validated plan; return a JSON-ready report (see docs/plan.md, "hetc simulate")."""
    n_stages = len(plan["stages"])
    arrival_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2 * n_stages + 1)[-1])
    if trace is not None:
        arrival_s, input_tokens, output_tokens = trace.arrival_s, trace.input_tokens, trace.output_tokens
        arrivals = "trace"
        window_s = float(arrival_s[-1] - arrival_s[0]) if arrival_s.size > 1 else 0.0
        rate = arrival_s.size / window_s if window_s > 0 else None
    else:
        rate = rate_rps if rate_rps is not None else plan["traffic"]["requests_per_s"]
        if rate is None or not rate > 0:
            raise HetcError("no request rate: pass --rate (the plan has no traffic.requests_per_s)", Loc("plan.json"))
        if not duration_s > 0:
            raise HetcError(f"--duration must be positive, got {duration_s}", Loc("hetc simulate"))
        expected = rate * duration_s
        gaps = arrival_rng.exponential(1.0 / rate, int(expected + 10 * math.sqrt(expected) + 100))
        arrival_s = np.cumsum(gaps)
        arrival_s = arrival_s[arrival_s < duration_s]
        input_tokens = np.zeros(arrival_s.size, dtype=np.int64)
        output_tokens = np.zeros(arrival_s.size, dtype=np.int64)
        arrivals = "poisson"
        window_s = duration_s
    sim = _Simulation(plan, arrival_s, input_tokens, output_tokens, seed, progress)
    sim.run()
    return _report(plan, sim, arrivals=arrivals, rate=rate, window_s=window_s, seed=seed)


def _report(plan: dict[str, Any], sim: _Simulation, *, arrivals: str, rate: float | None, window_s: float,
            seed: int) -> dict[str, Any]:
    arrival = np.asarray(sim.arrival_ms)
    done = np.asarray(sim.done_ms)
    latency = done - arrival
    ttft = np.asarray(sim.ttft_ms)
    tbt = np.asarray(sim.tbt_ms)
    slo = plan["slo"]
    meets = ~np.isnan(latency)
    if slo["latency_ms"] is not None:
        meets &= latency <= slo["latency_ms"]
    if slo["ttft_ms"] is not None:
        meets &= np.isnan(ttft) | (ttft <= slo["ttft_ms"])
    if slo["tbt_ms"] is not None:
        meets &= np.isnan(tbt) | (tbt <= slo["tbt_ms"])
    n = sim.n_requests
    attainment = float(meets.mean()) if n else 0.0
    required = SPEC_PERCENTILES[slo["percentile"]] / 100.0
    makespan_ms = float(np.nanmax(done)) if n else 0.0
    stages = []
    for stage in sim.stages:
        if stage.service_type == SERVICE_NONE:
            continue
        capacity_ms = stage.servers * makespan_ms
        busy_ms = stage.busy_ms
        if stage.service_type == SERVICE_CONTINUOUS:  # occupancy of the batch slots, not "a step is running"
            capacity_ms *= stage.max_batch
            busy_ms = stage.seq_ms
        row = {
            "id": stage.id,
            "kind": stage.kind,
            "replicas": stage.replicas,
            "visits_per_request": _round(stage.visits / n if n else 0.0, 4),
            "utilisation": _round(busy_ms / capacity_ms if capacity_ms > 0 else 0.0, 4),
            "mean_wait_ms": _round(stage.wait_ms / stage.visits if stage.visits else 0.0),
            "max_wait_ms": _round(stage.max_wait_ms),
            "wait_ms_per_request": _round(stage.wait_ms / n if n else 0.0),
            "max_queue": stage.max_queue,
        }
        if stage.service_type == SERVICE_BATCH:
            row["mean_batch"] = _round(stage.batch_items / stage.batches if stage.batches else 0.0)
        elif stage.service_type == SERVICE_CONTINUOUS:
            row["mean_batch"] = _round(stage.seq_ms / stage.busy_ms if stage.busy_ms else 0.0)
        stages.append(row)
    hot = sorted(stages, key=lambda s: (-s["wait_ms_per_request"], -s["utilisation"], s["id"]))
    bottleneck = hot[0] if hot else None
    capacity, capacity_stage = analytic_capacity(plan)
    return {
        "plan": plan["name"],
        "arrivals": arrivals,
        "seed": seed,
        "rate_rps": _round(rate, 4) if rate is not None else None,
        "window_s": _round(window_s, 4),
        "requests": n,
        "completed": int(np.count_nonzero(~np.isnan(done))),
        "events": sim.events,
        "simulated_s": _round(makespan_ms / 1e3, 4),
        "latency_ms": _percentiles(latency),
        "ttft_ms": _percentiles(ttft),
        "tbt_ms": _percentiles(tbt),
        "slo": dict(slo),
        "sla_attainment": _round(attainment, 5),
        "required_attainment": required,
        "meets_sla": bool(n > 0 and attainment >= required),
        "goodput_rps": _round(int(meets.sum()) / window_s, 4) if window_s > 0 else None,
        "stages": stages,
        "bottleneck": None if bottleneck is None else {
            "stage": bottleneck["id"], "wait_ms_per_request": bottleneck["wait_ms_per_request"],
            "utilisation": bottleneck["utilisation"]},
        "hot_spots": [s["id"] for s in hot if s["wait_ms_per_request"] > 0][:3],
        "analytic": {"capacity_rps": None if capacity is None else _round(capacity, 4), "stage": capacity_stage},
    }


def sweep_rate(plan: dict[str, Any], *, duration_s: float = 60.0, seed: int = 0, relative_tolerance: float = 0.02,
               on_step: Callable[[float, bool], None] | None = None) -> dict[str, Any]:
    """Bisect the highest Poisson rate at which the simulated plan meets its SLA; compare with the analytic capacity.

    The same seed at every rate (common random numbers) keeps the search monotone in practice.
    """
    capacity, capacity_stage = analytic_capacity(plan)
    start = capacity or plan["traffic"]["requests_per_s"] or 1.0
    runs: list[dict[str, Any]] = []

    def meets(rate: float) -> bool:
        report = simulate(plan, rate_rps=rate, duration_s=duration_s, seed=seed)
        runs.append({"rate_rps": _round(rate, 4), "meets_sla": report["meets_sla"],
                     "sla_attainment": report["sla_attainment"], "latency_p99_ms": (report["latency_ms"] or {}).get("p99"),
                     "bottleneck": (report["bottleneck"] or {}).get("stage")})
        if on_step is not None:
            on_step(rate, report["meets_sla"])
        return report["meets_sla"]

    low, high = 0.0, None
    rate = start
    for _ in range(12):  # bracket: grow until a rate fails, or shrink until one holds
        if meets(rate):
            low = rate
            if high is not None:
                break
            rate *= 1.5
        else:
            high = rate
            if low > 0:
                break
            rate /= 2.0
    if high is None:
        high = rate
    while low > 0 and high - low > relative_tolerance * low:
        middle = 0.5 * (low + high)
        if meets(middle):
            low = middle
        else:
            high = middle
    return {
        "plan": plan["name"],
        "seed": seed,
        "duration_s": duration_s,
        "capacity_rps": _round(low, 4),
        "first_failing_rps": _round(high, 4),
        "analytic_capacity_rps": None if capacity is None else _round(capacity, 4),
        "analytic_stage": capacity_stage,
        "ratio_to_analytic": _round(low / capacity, 4) if capacity else None,
        "planned_rps": plan["traffic"]["requests_per_s"],
        "runs": runs,
    }
