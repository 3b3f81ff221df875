"""The simulated stages built from a plan: each stage's service model, random streams and counters, and the
plan's stages and edges as a LoopGraph (hetc/loops.py holds the loop semantics)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from hetc.errors import HetcError, Loc
from hetc.loops import Edge as LoopEdge
from hetc.loops import LoopError, LoopGraph

Z_99 = 2.3263478740408408  # standard normal quantile at 0.99: lognormal sigma = ln(p99/median) / Z_99
DRAW_CHUNK = 4096  # random numbers drawn per refill: amortises numpy call overhead in the event loop

SERVICE_NONE, SERVICE_FIXED, SERVICE_BATCH, SERVICE_CONTINUOUS, SERVICE_TRANSFER = range(5)
_SERVICE_CODES = {"none": SERVICE_NONE, "fixed": SERVICE_FIXED, "batch": SERVICE_BATCH,
                  "continuous": SERVICE_CONTINUOUS, "transfer": SERVICE_TRANSFER}


class Stage:
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
        # routing, filled by Simulation._wire() (hetc/loops.py holds the semantics)
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
