"""Vectorised evaluation of plans over all samples at once (numpy), and the fast path of re-solving.

- `evaluate(choice)`: the TCO of a fixed plan (one candidate per op) in every sample, with replicas re-sized
  for the sample's throughput and traffic, and whether it still meets the SLA (phase limits, end-to-end
  latency, device capacity): what `solve` returns for the problem restricted to those candidates.
- `cheapest(allowed)`: per sample, the cheapest candidate of every op that meets its phase limits. When device
  prices are linear (no owned or capped inventory), no transfer costs money and there is no soft SLA, the TCO
  is a sum over ops, so this choice is the optimum whenever it also meets the end-to-end latency; it is the
  heuristic's own first start with the same tie-breaking (cheaper, then faster, then earlier candidate), and
  tests/test_uncertainty.py checks it returns the heuristic's plan. Ops that an edge's forbidden device pairs
  (no KV path, docs/kv-paths.md) tie together are chosen jointly: every combination of their classes that
  no forbidden pair rules out is priced and the cheapest kept, so the choice is still the optimum of the
  linear problem (the heuristic's repair of a forbidden pair moves one op at a time and can stop short of
  it). Samples where the choice misses the latency limit (or any sample of a non-linear problem) are
  re-solved with the heuristic on a perturbed copy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from hetc.placement import EPS_MS, SECONDS_PER_HOUR, PlacementProblem, solve
from hetc.placement.percentiles import PercentileTarget, meet_percentiles
from hetc.study.uncertainty.sampling import Scenarios, perturbed_problem, phase_of

PHASE_EPS = 1e-9  # the solver's phase-limit tolerance (placement._phase_violation)
NO_CHOICE = -1  # an op without a feasible candidate in a sample
# Ops tied by forbidden device pairs are chosen jointly over at most this many class combinations (an LLM's
# prefill and decode on 8 classes make 64); a larger group's forbidden samples go to the heuristic.
MAX_JOINT_COMBINATIONS = 4096


class Compiled:
    """The problem's candidates as arrays, and per-sample figures of every candidate (computed once)."""

    def __init__(self, problem: PlacementProblem, sc: Scenarios, targets: tuple[PercentileTarget, ...] = ()):
        """`targets`: the spec's latency targets below its highest percentile (BuiltProblem.percentile_targets),
        which every plan must also meet, as the planner's plan does."""
        if problem.soft_sla_lambda is not None:
            raise ValueError("uncertainty analysis takes a hard SLA (soft_sla_lambda None)")
        self.problem, self.sc, self.targets = problem, sc, tuple(targets)
        self.index = {op.id: v for v, op in enumerate(problem.ops)}
        cls = {c: j for j, c in enumerate(sc.classes)}
        self.owned = np.array([d.owned for d in problem.devices])
        self.capacity = np.array([math.inf if d.capacity is None else d.capacity for d in problem.devices])
        self.linear = (not self.owned.any() and np.isinf(self.capacity).all()
                       and not any(usd for e in problem.edges for _, usd in e.transfers.values()))
        self.dev: list[np.ndarray] = []
        self.lat: list[np.ndarray] = []  # (N, K) path ms (the op at its worst invocations)
        self.once: list[np.ndarray] = []  # (N, K) ms of one invocation
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
            self.once.append(lat0 * e)
            self.lat.append(lat0 * e * op.worst_invocations)
            self.devices.append(devices)
            self.fixed.append(fixed)
            self.cost.append(devices * sc.price[:, dev] + fixed)
            self.phase_ok.append(ok)
        self.topo, self.in_edges = _topology(problem, self.index, cls, lambda edge: edge.worst_traversals)
        # per target: (limit, per-op path ms, in-edges) with every op invoked as often as at that percentile
        self.target_paths = [(t.limit_ms, [once * t.invocations.get(op.id, 1.0)
                                           for op, once in zip(problem.ops, self.once, strict=True)],
                              _topology(problem, self.index, cls, lambda edge, t=t: t.invocations.get(edge.dst, 1.0))[1])
                             for t in self.targets]
        self.forbidden_groups, self.forbidden_edges = _forbidden_groups(problem, self.index, cls)

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
            for limit, lat, in_edges in self.target_paths:  # as hetc.placement.percentiles.meet_percentiles checks
                ok &= self._longest_path(choice, lat, in_edges) <= limit + 1e-6
        return total, ok

    def critical_ms(self, choice: np.ndarray) -> np.ndarray:
        return self._longest_path(choice, self.lat, self.in_edges)

    def _longest_path(self, choice: np.ndarray, lat: list[np.ndarray], in_edges) -> np.ndarray:
        n = self.sc.samples
        rows = np.arange(n)
        finish = np.zeros((n, len(self.problem.ops)))
        device = np.stack([self.dev[v][choice[:, v]] for v in range(len(self.problem.ops))], axis=1)
        for v in self.topo:
            start = np.zeros(n)
            for u, table in in_edges[v]:
                start = np.maximum(start, finish[:, u] + table[device[:, u], device[:, v]])
            finish[:, v] = start + lat[v][rows, choice[:, v]]
        return finish.max(axis=1)

    def _uses_forbidden_pair(self, choice: np.ndarray, ops: set[int] | None = None) -> np.ndarray:
        """Per sample: does the plan put an edge (from one of `ops`; None = any) on a device pair no KV path
        serves (docs/kv-paths.md)?"""
        bad = np.zeros(self.sc.samples, dtype=bool)
        for u, w, pairs in self.forbidden_edges:
            if ops is None or u in ops:
                src, dst = self.dev[u][choice[:, u]], self.dev[w][choice[:, w]]
                for a, b in pairs:
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
        usable = [self.phase_ok[v] & (True if allowed is None else allowed[v][None, :]) for v in range(ops)]
        for v in range(ops):
            choice[:, v] = _first_cheapest(usable[v], self.cost[v], self.lat[v])
            feasible &= usable[v].any(axis=1)
        undecided = np.zeros(n, dtype=bool)
        if self.linear:
            for group in self.forbidden_groups:
                undecided |= self._choose_jointly(group, usable, choice, feasible)
        total = np.full(n, math.inf)
        if self.linear:
            cost, ok = self.evaluate(np.where(feasible[:, None], choice, 0))
            total = np.where(feasible & ok, cost, math.inf)
            resolve = feasible & (~ok | undecided)  # e.g. the choice misses the latency limit: ask the heuristic
        else:
            resolve = feasible
        choice[~feasible] = NO_CHOICE
        for s in np.flatnonzero(resolve):
            total[s], choice[s] = self._solve_sample(int(s), allowed)
        return total, choice, int(resolve.sum())

    def _solve_sample(self, s: int, allowed: list[np.ndarray] | None) -> tuple[float, np.ndarray]:
        return solve_restricted(perturbed_problem(self.problem, self.sc, s), allowed, self.targets)

    def _choose_jointly(self, group: list[int], usable: list[np.ndarray], choice: np.ndarray,
                        feasible: np.ndarray) -> np.ndarray:
        """Where the ops' own cheapest choices form a forbidden pair, the cheapest combination of the group's
        classes that forms none (each op on its cheapest candidate of that class); `choice` is updated in
        place. Returns the samples left undecided (too many combinations: the heuristic decides them)."""
        n = self.sc.samples
        hit = feasible & self._uses_forbidden_pair(choice, set(group))
        if not hit.any():
            return np.zeros(n, dtype=bool)
        classes = [np.unique(self.dev[v]) for v in group]
        if math.prod(len(c) for c in classes) > MAX_JOINT_COMBINATIONS:
            return hit
        rows = np.flatnonzero(hit)
        # per op and class: its cheapest usable candidate there and that candidate's $/hour (inf = none)
        best: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []
        for v, cls in zip(group, classes, strict=True):
            per_class = {}
            for j in cls:
                on = usable[v][rows] & (self.dev[v] == j)[None, :]
                k = _first_cheapest(on, self.cost[v][rows], self.lat[v][rows])
                per_class[int(j)] = (k, np.where(on.any(axis=1), self.cost[v][rows, k], math.inf))
            best.append(per_class)
        lowest = np.full(len(rows), math.inf)
        picked = np.zeros((len(rows), len(group)), dtype=int)
        for combo in itertools.product(*[[int(j) for j in c] for c in classes]):  # a fixed order: ties keep the first
            at = dict(zip(group, combo, strict=True))
            if any((at[u], at[w]) in pairs for u, w, pairs in self.forbidden_edges if u in at):
                continue
            cost = np.zeros(len(rows))
            for i, j in enumerate(combo):
                cost = cost + best[i][j][1]
            better = cost < lowest
            lowest = np.where(better, cost, lowest)
            for i, j in enumerate(combo):
                picked[better, i] = best[i][j][0][better]
        found = np.isfinite(lowest)
        for i, v in enumerate(group):
            choice[rows[found], v] = picked[found, i]
        feasible[rows[~found]] = False  # every combination is forbidden or has an op without a candidate
        return np.zeros(n, dtype=bool)


def _first_cheapest(usable: np.ndarray, cost: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Per sample, the usable candidate of lowest cost, then shortest path, then lowest index (the heuristic's
    tie-breaking); 0 where none is usable."""
    cost = np.where(usable, cost, math.inf)
    tied = usable & (cost == cost.min(axis=1, keepdims=True))
    path = np.where(tied, path, math.inf)
    return (tied & (path == path.min(axis=1, keepdims=True))).argmax(axis=1)


def _forbidden_groups(problem: PlacementProblem, index: dict[str, int],
                      cls: dict[str, int]) -> tuple[list[list[int]], list]:
    """(groups of ops tied together by edges with forbidden device pairs, each sorted; the edges as
    (source op, destination op, forbidden pairs of class indices))."""
    edges = [(index[e.src], index[e.dst], frozenset((cls[a], cls[b]) for a, b in e.forbidden
                                                    if a in cls and b in cls))
             for e in problem.edges if e.forbidden]
    parent = list(range(len(problem.ops)))

    def root(v: int) -> int:
        while parent[v] != v:
            v = parent[v]
        return v

    for u, w, _ in edges:
        parent[root(u)] = root(w)
    groups: dict[int, list[int]] = {}
    for v in sorted({v for u, w, _ in edges for v in (u, w)}):
        groups.setdefault(root(v), []).append(v)
    return sorted(groups.values()), edges


def solve_restricted(problem: PlacementProblem, allowed: list[np.ndarray] | None,
                     targets: tuple[PercentileTarget, ...] = ()) -> tuple[float, np.ndarray]:
    """(TCO, candidate index per op in `problem`) of the heuristic's plan for `problem` restricted to the
    `allowed` candidates; (inf, NO_CHOICE...) when infeasible. The heuristic runs as the planner runs it
    (hetc.placement.problem.solve_placement), LP-relaxation start and lower percentile `targets` included:
    without that start its repair of a forbidden device pair can stop at a dearer plan than the one the
    planner deploys."""
    from dataclasses import replace

    kept = [np.arange(len(op.candidates)) if allowed is None else np.flatnonzero(allowed[v])
            for v, op in enumerate(problem.ops)]
    if any(len(k) == 0 for k in kept):
        return math.inf, np.full(len(kept), NO_CHOICE)
    ops = [replace(op, candidates=[op.candidates[k] for k in kept[v]]) for v, op in enumerate(problem.ops)]
    result = meet_percentiles(targets, replace(problem, ops=ops), lambda restricted: solve(restricted, "heuristic"))
    if not result.feasible:
        return math.inf, np.full(len(ops), NO_CHOICE)
    index = {op.id: v for v, op in enumerate(problem.ops)}
    return result.tco_usd_per_hour, np.array([kept[index[p.op]][p.candidate_index]
                                              for p in sorted(result.ops, key=lambda p: index[p.op])])


def _topology(problem: PlacementProblem, index: dict[str, int], cls: dict[str, int], times):
    """Ops in topological order, and per op its in-edges as (source op, (classes x classes) path ms), each
    transfer taken times(edge) times."""
    n = len(problem.ops)
    in_edges: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n)]
    indegree = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    for edge in problem.edges:
        u, v = index[edge.src], index[edge.dst]
        table = np.zeros((len(cls), len(cls)))
        for (a, b), (ms, _) in edge.transfers.items():
            table[cls[a], cls[b]] = ms * times(edge)
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
