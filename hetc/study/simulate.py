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
from hetc.loops import Edge as LoopEdge
from hetc.loops import LoopError, LoopGraph

Z_99 = 2.3263478740408408  # standard normal quantile at 0.99: lognormal sigma = ln(p99/median) / Z_99
DRAW_CHUNK = 4096  # random numbers drawn per refill: amortises numpy call overhead in the event loop
PROGRESS_EVERY = 2000  # completed requests between progress callbacks
SPEC_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
# Work bound: a run simulates at most MAX_EVENTS events (arrivals, service completions, decode steps, edge
# deliveries, pass ends), a few minutes of CPU; inputs that need more are refused before the run (exit 2).
# EVENTS_PER_S: bench/simulate.py, 739 k events/s uncontended before the loop rewrite, which costs ~1.4x
# (bench/README.md); used only to tell the user the time a refused run would take.
MAX_EVENTS = 50_000_000
EVENTS_PER_S = 500_000
MAX_TRACE_BYTES = 64 << 20  # 64 MiB: about two million `arrival_s,input_tokens,output_tokens` rows

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
    from hetc.userfiles import UnreadableFile, read_regular_file

    path = Path(path)
    try:
        lines = read_regular_file(path, MAX_TRACE_BYTES, "traces").decode("utf-8").splitlines()
    except UnreadableFile as exc:
        raise HetcError(f"cannot read trace: {exc}", Loc(str(path))) from None
    except UnicodeDecodeError as exc:
        raise HetcError(f"the trace is not UTF-8 text (byte {exc.start})", Loc(str(path))) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        from hetc.json_source import loads_json

        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = loads_json(line, str(path))  # nesting bounded: a 100,000-deep line is exit 2
            except HetcError as exc:  # located on line 1 of the one line: move it to the file's line
                diag = exc.diagnostics[0]
                raise HetcError(diag.message, Loc(str(path), number, diag.loc.col)) from None
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
        # routing, filled by _Simulation._wire() (hetc/loops.py holds the semantics)
        self.plain_out: list[int] = []  # edges with probability 1
        self.branch_out: list[tuple[float, int]] = []  # (cumulative probability, edge): one draw picks one
        self.chain: list[int] = []  # loops holding the stage, innermost first
        self.alive_until: list[float] = []  # per loop of the chain: the first pass whose result it cannot use
        self.top = True  # in no loop
        self.static_needed = 1  # tokens a top-level stage waits for
        self.in_rules: list[tuple[tuple[int, ...], int]] = []  # per in-edge: loops it enters, loop it is a back edge of
        # random streams, refilled in chunks
        self._rng_service = rng_service
        self._rng_branch = rng_branch
        self._lognormal: list[float] = []
        self._uniform: list[float] = []
        # continuous batching replicas
        # replicas are created when first needed: a plan may give a stage more replicas than requests run at once
        self.idle_replicas: list[int] = []
        self.step_count: list[int] = []
        self.active: list[list[tuple[int, int]]] = []  # per replica: heap of (last step, request)
        self.n_active: list[int] = []
        self.admitted: list[list[int]] = []
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

    def new_replica(self) -> int:
        self.step_count.append(0)
        self.active.append([])
        self.n_active.append(0)
        self.admitted.append([])
        return len(self.step_count) - 1

    def draw_lognormal_ms(self) -> float:
        if not self._lognormal:
            self._lognormal = self._rng_service.lognormal(self.mu, self.sigma, DRAW_CHUNK).tolist()
        return self._lognormal.pop()

    def draw_uniform(self) -> float:
        if not self._uniform:
            self._uniform = self._rng_branch.random(DRAW_CHUNK).tolist()
        return self._uniform.pop()


def stage_graph(plan: dict[str, Any]) -> LoopGraph:
    """The plan's stages and edges as a LoopGraph (hetc/loops.py holds the semantics)."""
    index = {s["id"]: i for i, s in enumerate(plan["stages"])}
    edges = [LoopEdge(index[e["src"]], index[e["dst"]], float(e["probability"]), bool(e["back_edge"]),
                      int(e["max_iterations"] or 0)) for e in plan["edges"]]
    try:
        return LoopGraph(len(index), edges)
    except LoopError as exc:
        raise HetcError(str(exc), Loc("plan.json")) from None


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


class _LoopRun:
    """One request's running instance of a loop: its pass, the back-edge tokens of this pass, held exits."""

    __slots__ = ("passes", "received", "fired", "held")

    def __init__(self) -> None:
        self.passes = 0
        self.received = 0
        self.fired: dict[int, float] = {}  # back edge -> time its live token reaches the header
        self.held: dict[int, bool] = {}  # edge leaving the loop -> the last pass's token (live?)


class _Simulation:
    def __init__(self, plan: dict[str, Any], arrival_s: np.ndarray, input_tokens: np.ndarray,
                 output_tokens: np.ndarray, seed: int, progress: Callable[[int, int], None] | None,
                 max_events: int = MAX_EVENTS):
        n_stages = len(plan["stages"])
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2 * n_stages)]
        self.stages = [_Stage(i, spec, streams[2 * i], streams[2 * i + 1]) for i, spec in enumerate(plan["stages"])]
        self.graph = graph = stage_graph(plan)
        self._wire(plan)
        self.sources = [self.stages[v] for v in graph.sources]
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
        self.ready: deque[tuple[_Stage, int, float, bool]] = deque()  # tokens delivered now, not yet handled
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
                for source in self.sources:
                    self.join(source, request, time_ms, True)
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
    def _needed(self, stage: _Stage, request: int) -> int:
        """In-edges of the stage that deliver in the current pass: those entering a loop only on its first
        pass, a loop's back edges only on its later passes."""
        needed = 0
        for entered, owner in stage.in_rules:
            if owner >= 0 and self.passes(request, owner) == 0:
                continue
            if all(self.passes(request, m) == 0 for m in entered):
                needed += 1
        return needed or 1

    def join(self, stage: _Stage, request: int, time_ms: float, live: bool) -> None:
        """A token (live, or a skip) reaches the stage now. Tokens are queued and handled in order after the
        current event (no recursion along a graph's depth)."""
        self.ready.append((stage, request, time_ms, live))

    def drain(self) -> None:
        ready = self.ready
        while ready:
            self._join(*ready.popleft())

    def _join(self, stage: _Stage, request: int, time_ms: float, live: bool) -> None:
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

    def resolved(self, stage: _Stage, request: int, time_ms: float) -> None:
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

    def route(self, stage: _Stage, request: int, time_ms: float) -> None:
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

    def finish(self, stage: _Stage, request: int, time_ms: float) -> None:
        self.route(stage, request, time_ms)
        self.resolved(stage, request, time_ms)


    # ------------------------------------------------------------------ stages
    def enqueue(self, stage: _Stage, request: int, time_ms: float) -> None:
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
    # inverted_cdf: the smallest measured value with at least that fraction of requests at or below it, so a
    # percentile is within its target exactly when that fraction of requests meets the target
    p50, p90, p99 = np.percentile(values, [50, 90, 99], method="inverted_cdf")
    return {"p50": _round(p50), "p90": _round(p90), "p99": _round(p99), "mean": _round(values.mean()),
            "max": _round(values.max())}


def _round(value: float, digits: int = 3) -> float:
    return float(round(float(value), digits))


def planned_rate(plan: dict[str, Any]) -> float | None:
    """The request rate the plan was sized for: the spec's requests_per_s, or for offline work (`requests` +
    `deadline_h`, `tokens_per_day`) the rate the planner derived from its volume; None if neither."""
    traffic = plan["traffic"]
    rate = traffic.get("requests_per_s")
    return rate if rate is not None else traffic.get("planned_requests_per_s")


def _check_inputs(plan: dict[str, Any], rate_rps: float | None, duration_s: float, seed: int,
                  trace: Trace | None) -> None:
    """Refuse options that make no sense or would run for hours (exit 2 with the reason)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise HetcError(f"--seed must be a non-negative whole number, got {seed!r}", Loc("--seed"))
    if trace is None:
        rate = rate_rps if rate_rps is not None else planned_rate(plan)
        if rate is None:
            raise HetcError("no request rate: pass --rate (the plan has no traffic.requests_per_s nor "
                            "traffic.planned_requests_per_s)", Loc("plan.json"))
        where = Loc("--rate") if rate_rps is not None else Loc("plan.json", 0, 0)
        if not (math.isfinite(rate) and rate > 0):
            raise HetcError(f"the request rate must be a positive finite number, got {rate!r}", where)
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise HetcError(f"--duration must be a positive finite number of seconds, got {duration_s!r}",
                            Loc("--duration"))
        requests = rate * duration_s
    else:
        requests = float(trace.arrival_s.size)
    if requests > MAX_EVENTS:
        raise HetcError(f"{requests:.3g} requests to simulate: at most {MAX_EVENTS:,} events are simulated per run "
                        f"(about {MAX_EVENTS / EVENTS_PER_S:.0f} s of CPU); lower --rate or --duration",
                        Loc("hetc simulate"))
    per_request = _events_per_request(plan)
    if requests * per_request > MAX_EVENTS:
        raise HetcError(f"this run needs at least {requests * per_request:.3g} events ({per_request:.3g} per request: "
                        f"stage visits and decode steps); at most {MAX_EVENTS:,} are simulated per run (about "
                        f"{MAX_EVENTS / EVENTS_PER_S:.0f} s of CPU); lower --rate or --duration, or the plan's "
                        "output_tokens", Loc("hetc simulate"))


def _events_per_request(plan: dict[str, Any]) -> float:
    """A lower bound on events per request: one per stage visit, a decode step per max_batch tokens."""
    events = 1.0
    for stage in plan["stages"]:
        service = stage["service"]
        visits = float(stage["invocations"]["expected"])
        if service["type"] == "continuous":
            events += visits * max(1.0, float(service.get("output_tokens", 1)) / max(1, int(service.get("max_batch", 1))))
        elif service["type"] != "none":
            events += visits
    return events


def simulate(plan: dict[str, Any], *, rate_rps: float | None = None, duration_s: float = 60.0, seed: int = 0,
             trace: Trace | None = None, progress: Callable[[int, int], None] | None = None,
             max_events: int = MAX_EVENTS) -> dict[str, Any]:
    """Simulate a validated plan; return a JSON-ready report (see docs/plan.md, "hetc simulate")."""
    _check_inputs(plan, rate_rps, duration_s, seed, trace)
    n_stages = len(plan["stages"])
    arrival_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2 * n_stages + 1)[-1])
    if trace is not None:
        arrival_s, input_tokens, output_tokens = trace.arrival_s, trace.input_tokens, trace.output_tokens
        arrivals = "trace"
        window_s = float(arrival_s[-1] - arrival_s[0]) if arrival_s.size > 1 else 0.0
        rate = arrival_s.size / window_s if window_s > 0 else None
    else:
        rate = rate_rps if rate_rps is not None else planned_rate(plan)
        expected = rate * duration_s
        gaps = arrival_rng.exponential(1.0 / rate, int(expected + 10 * math.sqrt(expected) + 100))
        arrival_s = np.cumsum(gaps)
        arrival_s = arrival_s[arrival_s < duration_s]
        input_tokens = np.zeros(arrival_s.size, dtype=np.int64)
        output_tokens = np.zeros(arrival_s.size, dtype=np.int64)
        arrivals = "poisson"
        window_s = duration_s
    sim = _Simulation(plan, arrival_s, input_tokens, output_tokens, seed, progress, max_events)
    sim.run()
    return _report(plan, sim, arrivals=arrivals, rate=rate, window_s=window_s, seed=seed)


def latency_targets(slo: dict[str, Any]) -> dict[str, float]:
    """Every end-to-end latency percentile target of the plan's SLO, e.g. {"p50": 800, "p99": 2500}."""
    targets = dict(slo.get("latency_percentiles_ms") or {})
    if slo.get("latency_ms") is not None:
        targets.setdefault(slo["percentile"], slo["latency_ms"])
    return dict(sorted(targets.items(), key=lambda item: SPEC_PERCENTILES[item[0]]))


def _checks(slo: dict[str, Any], metrics: dict[str, np.ndarray], dropped: np.ndarray) -> list[dict[str, Any]]:
    """One row per SLA target: the measured percentile (dropped requests count as never answering) and
    the fraction of requests within the target; a target is met when that fraction reaches the percentile."""
    rows = []
    wanted = [("latency_ms", name, ms) for name, ms in latency_targets(slo).items()]
    wanted += [(key, slo["percentile"], slo[key]) for key in ("ttft_ms", "tbt_ms") if slo.get(key) is not None]
    for metric, name, target in wanted:
        values = np.where(dropped, np.inf, metrics[metric])
        values = values[~np.isnan(values)]  # TTFT/TBT: only requests that made an LLM call
        required = SPEC_PERCENTILES[name] / 100.0
        if values.size == 0:
            continue
        measured = float(np.percentile(values, SPEC_PERCENTILES[name], method="inverted_cdf"))
        attainment = float(np.count_nonzero(values <= target)) / values.size
        rows.append({"metric": metric, "percentile": name, "target_ms": float(target),
                     "measured_ms": _round(measured) if math.isfinite(measured) else None,
                     "attainment": _round(attainment, 5), "required": required,
                     "meets": attainment >= required})
    return rows


def _dropped(sim: _Simulation) -> tuple[np.ndarray, dict[str, int]]:
    """Requests that did not complete, and why (the event budget, or tokens left waiting at a stage)."""
    done = ~np.isnan(np.asarray(sim.done_ms, dtype=float))
    reasons: dict[str, int] = {}
    if done.all():
        return ~done, reasons
    waiting = {request: stage for request, stage in sorted(sim.joins)}
    for request in np.flatnonzero(~done).tolist():
        if sim.events >= sim.max_events:
            reason = f"the event budget ({sim.max_events:,} events) ran out first"
        elif request in waiting:
            reason = f"left waiting for inputs at stage {sim.stages[waiting[request]].id}"
        else:
            reason = "left waiting inside a loop"
        reasons[reason] = reasons.get(reason, 0) + 1
    return ~done, reasons


def _report(plan: dict[str, Any], sim: _Simulation, *, arrivals: str, rate: float | None, window_s: float,
            seed: int) -> dict[str, Any]:
    arrival = np.asarray(sim.arrival_ms)
    done = np.asarray(sim.done_ms)
    latency = done - arrival
    ttft = np.asarray(sim.ttft_ms)
    tbt = np.asarray(sim.tbt_ms)
    slo = plan["slo"]
    n = sim.n_requests
    dropped, reasons = _dropped(sim)
    metrics = {"latency_ms": latency, "ttft_ms": ttft, "tbt_ms": tbt}
    checks = _checks(slo, metrics, dropped)
    # a request meets the SLA when it meets every target judged at the SLO's percentile (goodput counts them)
    meets = ~dropped
    for row in checks:
        if row["percentile"] == slo["percentile"]:
            values = metrics[row["metric"]]
            meets &= (values <= row["target_ms"]) | (np.isnan(values) & (row["metric"] != "latency_ms"))
    tail = [row["attainment"] for row in checks if row["percentile"] == slo["percentile"]]
    attainment = min(tail) if tail else (float(np.count_nonzero(~dropped)) / n if n else 0.0)
    required = SPEC_PERCENTILES[slo["percentile"]] / 100.0
    makespan_ms = float(np.nanmax(done)) if n and not dropped.all() else 0.0
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
        "completed": int(np.count_nonzero(~dropped)),
        "dropped": {"count": int(np.count_nonzero(dropped)), "reasons": reasons},
        "events": sim.events,
        "simulated_s": _round(makespan_ms / 1e3, 4),
        "latency_ms": _percentiles(latency),
        "ttft_ms": _percentiles(ttft),
        "tbt_ms": _percentiles(tbt),
        "slo": dict(slo),
        "sla_attainment": _round(attainment, 5),
        "required_attainment": required,
        "checks": checks,
        "meets_sla": bool(n > 0 and not dropped.any() and all(row["meets"] for row in checks)),
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
    start = capacity or planned_rate(plan) or 1.0
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
        "planned_rps": planned_rate(plan),
        "runs": runs,
    }
