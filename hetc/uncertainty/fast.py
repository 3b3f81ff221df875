"""Vectorised evaluation of plans over all samples at once (numpy), and the fast path of re-solving.

- `evaluate(choice)`: the TCO of a fixed plan (one candidate per op) in every sample, with replicas re-sized
  for the sample's throughput and traffic, and whether it still meets the SLA (phase limits, end-to-end
  latency, device capacity): what `solve` returns for the problem restricted to those candidates.
- `cheapest(allowed)`: per sample, the cheapest candidate of every op that meets its phase limits. When device
  prices are linear (no owned or capped inventory), no transfer costs money and there is no soft SLA, the TCO
  is a sum over ops, so this choice is the optimum whenever it also meets the end-to-end latency; it is the
  heuristic's own first start with the same tie-breaking (cheaper, then faster, then earlier candidate), and
  tests/test_uncertainty.py checks it returns the heuristic's plan. Samples where it misses the latency limit
  (or any sample of a non-linear problem) are re-solved with the heuristic on a perturbed copy.
"""

from __future__ import annotations

import math

import numpy as np

from hetc.placement import EPS_MS, SECONDS_PER_HOUR, PlacementProblem, solve
from hetc.uncertainty.sampling import Scenarios, perturbed_problem, phase_of

PHASE_EPS = 1e-9  # the solver's phase-limit tolerance (placement._phase_violation)
NO_CHOICE = -1  # an op without a feasible candidate in a sample


class Compiled:
    """The problem's candidates as arrays, and per-sample figures of every candidate (computed once)."""

    def __init__(self, problem: PlacementProblem, sc: Scenarios):
        if problem.soft_sla_lambda is not None:
            raise ValueError("uncertainty analysis takes a hard SLA (soft_sla_lambda None)")
        self.problem, self.sc = problem, sc
        self.index = {op.id: v for v, op in enumerate(problem.ops)}
        cls = {c: j for j, c in enumerate(sc.classes)}
        self.owned = np.array([d.owned for d in problem.devices])
        self.capacity = np.array([math.inf if d.capacity is None else d.capacity for d in problem.devices])
        self.linear = (not self.owned.any() and np.isinf(self.capacity).all()
                       and not any(usd for e in problem.edges for _, usd in e.transfers.values()))
        self.dev: list[np.ndarray] = []
        self.lat: list[np.ndarray] = []  # (N, K) path ms
        self.cost: list[np.ndarray] = []  # (N, K) $/hour of the op alone (bought devices + per invocation)
        self.devices: list[np.ndarray] = []  # (N, K) devices the op needs
        self.fixed: list[np.ndarray] = []  # (N, K) per-invocation $/hour
        self.phase_ok: list[np.ndarray] = []  # (N, K)
        rate = sc.rate[:, None]
        for op in problem.ops:
            cands = op.candidates
            dev = np.array([cls[c.device] for c in cands], dtype=int)
            e = sc.error[:, dev, phase_of(op)]
            lat0 = np.array([c.latency_ms for c in cands])
            thr = np.array([c.throughput_rps for c in cands]) / e
            need = rate * op.load / thr
            replicas = np.where(np.isinf(thr), 1.0,
                                np.maximum(1.0, np.ceil(need - 1e-9 * np.maximum(1.0, need))))
            devices = replicas * np.array([c.devices_per_replica for c in cands])
            fixed = np.array([c.usd_per_invocation for c in cands]) * op.load * rate * SECONDS_PER_HOUR
            limits = {**problem.phase_limits, **op.limits}
            ok = np.ones(e.shape, dtype=bool)
            for key, limit in limits.items():
                base = np.array([c.metrics.get(key, -math.inf) for c in cands])
                if key == "ttft_ms":
                    value = base + lat0 * (e - 1.0)
                elif key == "tbt_ms":
                    value = base * e
                else:
                    value = np.broadcast_to(base, e.shape)
                ok &= value <= limit + PHASE_EPS
            self.dev.append(dev)
            self.lat.append(lat0 * e * op.worst_invocations)
            self.devices.append(devices)
            self.fixed.append(fixed)
            self.cost.append(devices * sc.price[:, dev] + fixed)
            self.phase_ok.append(ok)
        self.topo, self.in_edges = _topology(problem, self.index, cls)

    # ----------------------------------------------------------------------------------------- fixed plans

    def evaluate(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(TCO $/hour, meets the SLA) per sample of a plan: choice (N, ops) or (ops,) candidate indices."""
        n = self.sc.samples
        choice = np.broadcast_to(choice, (n, len(self.problem.ops)))
        rows = np.arange(n)
        if (choice == NO_CHOICE).any():
            raise ValueError("evaluate takes a complete plan")
        counts = np.zeros((n, len(self.sc.classes)))
        fixed = np.zeros(n)
        ok = np.ones(n, dtype=bool)
        for v in range(len(self.problem.ops)):
            k = choice[:, v]
            np.add.at(counts, (rows, self.dev[v][k]), self.devices[v][rows, k])
            fixed = fixed + self.fixed[v][rows, k]
            ok &= self.phase_ok[v][rows, k]
        total = np.zeros(n)
        for j in np.argsort(self.sc.classes, kind="stable"):  # the solver sums classes by name
            owned = np.minimum(counts[:, j], self.owned[j])
            total = total + (owned * self.sc.owned_price[:, j] + (counts[:, j] - owned) * self.sc.price[:, j])
            ok &= counts[:, j] <= self.capacity[j]
        total = total + fixed + self._edge_usd(choice)
        ok &= ~self._uses_forbidden_pair(choice)
        if self.problem.latency_limit_ms is not None:
            ok &= self.critical_ms(choice) <= self.problem.latency_limit_ms + EPS_MS
        return total, ok

    def critical_ms(self, choice: np.ndarray) -> np.ndarray:
        n = self.sc.samples
        rows = np.arange(n)
        finish = np.zeros((n, len(self.problem.ops)))
        device = np.stack([self.dev[v][choice[:, v]] for v in range(len(self.problem.ops))], axis=1)
        for v in self.topo:
            start = np.zeros(n)
            for u, table in self.in_edges[v]:
                start = np.maximum(start, finish[:, u] + table[device[:, u], device[:, v]])
            finish[:, v] = start + self.lat[v][rows, choice[:, v]]
        return finish.max(axis=1)

    def _uses_forbidden_pair(self, choice: np.ndarray) -> np.ndarray:
        """Per sample: does the plan put an edge on a device pair no KV path serves (docs/kv-paths.md)?"""
        bad = np.zeros(self.sc.samples, dtype=bool)
        for edge in self.problem.edges:
            if not edge.forbidden:
                continue
            u, v = self.index[edge.src], self.index[edge.dst]
            src = np.array([c.device for c in self.problem.ops[u].candidates])[choice[:, u]]
            dst = np.array([c.device for c in self.problem.ops[v].candidates])[choice[:, v]]
            for a, b in edge.forbidden:
                bad |= (src == a) & (dst == b)
        return bad

    def _edge_usd(self, choice: np.ndarray) -> np.ndarray:
        total = np.zeros(self.sc.samples)
        for edge in self.problem.edges:
            u, v = self.index[edge.src], self.index[edge.dst]
            src = np.array([c.device for c in self.problem.ops[u].candidates])[choice[:, u]]
            dst = np.array([c.device for c in self.problem.ops[v].candidates])[choice[:, v]]
            for (a, b), (_, usd) in sorted(edge.transfers.items()):
                if usd:
                    total = total + np.where((src == a) & (dst == b),
                                             usd * edge.load * self.sc.rate * SECONDS_PER_HOUR, 0.0)
        return total

    # ------------------------------------------------------------------------------------------ re-solving

    def cheapest(self, allowed: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """(TCO per sample (inf = infeasible), chosen candidates (N, ops), samples re-solved by the heuristic)
        of the problem restricted to `allowed` candidates (one boolean mask per op; None = all)."""
        n, ops = self.sc.samples, len(self.problem.ops)
        choice = np.zeros((n, ops), dtype=int)
        feasible = np.ones(n, dtype=bool)
        for v in range(ops):
            usable = self.phase_ok[v] & (True if allowed is None else allowed[v][None, :])
            cost = np.where(usable, self.cost[v], math.inf)
            lowest = cost.min(axis=1, keepdims=True)
            tied = usable & (cost == lowest)
            path = np.where(tied, self.lat[v], math.inf)
            first = tied & (path == path.min(axis=1, keepdims=True))
            choice[:, v] = first.argmax(axis=1)
            feasible &= usable.any(axis=1)
        total = np.full(n, math.inf)
        if self.linear:
            cost, ok = self.evaluate(np.where(feasible[:, None], choice, 0))
            total = np.where(feasible & ok, cost, math.inf)
            resolve = feasible & ~ok  # the cheapest choice misses the latency limit: ask the heuristic
        else:
            resolve = feasible
        choice[~feasible] = NO_CHOICE
        for s in np.flatnonzero(resolve):
            total[s], choice[s] = self._solve_sample(int(s), allowed)
        return total, choice, int(resolve.sum())

    def _solve_sample(self, s: int, allowed: list[np.ndarray] | None) -> tuple[float, np.ndarray]:
        return solve_restricted(perturbed_problem(self.problem, self.sc, s), allowed)


def solve_restricted(problem: PlacementProblem, allowed: list[np.ndarray] | None) -> tuple[float, np.ndarray]:
    """(TCO, candidate index per op in `problem`) of the heuristic's plan for `problem` restricted to the
    `allowed` candidates; (inf, NO_CHOICE...) when infeasible."""
    from dataclasses import replace

    kept = [np.arange(len(op.candidates)) if allowed is None else np.flatnonzero(allowed[v])
            for v, op in enumerate(problem.ops)]
    if any(len(k) == 0 for k in kept):
        return math.inf, np.full(len(kept), NO_CHOICE)
    ops = [replace(op, candidates=[op.candidates[k] for k in kept[v]]) for v, op in enumerate(problem.ops)]
    result = solve(replace(problem, ops=ops), "heuristic", lp_bound=False)
    if not result.feasible:
        return math.inf, np.full(len(ops), NO_CHOICE)
    index = {op.id: v for v, op in enumerate(problem.ops)}
    return result.tco_usd_per_hour, np.array([kept[index[p.op]][p.candidate_index]
                                              for p in sorted(result.ops, key=lambda p: index[p.op])])


def _topology(problem: PlacementProblem, index: dict[str, int], cls: dict[str, int]):
    """Ops in topological order, and per op its in-edges as (source op, (classes x classes) path ms)."""
    n = len(problem.ops)
    in_edges: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n)]
    indegree = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    for edge in problem.edges:
        u, v = index[edge.src], index[edge.dst]
        table = np.zeros((len(cls), len(cls)))
        for (a, b), (ms, _) in edge.transfers.items():
            table[cls[a], cls[b]] = ms * edge.worst_traversals
        in_edges[v].append((u, table))
        indegree[v] += 1
        succs[u].append(v)
    ready = [v for v in range(n) if indegree[v] == 0]
    order = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in succs[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                ready.append(w)
    return order, in_edges
