"""The heuristic for graphs beyond the exact solver's reach (docs/placement.md, "Heuristic"): repairs of a
start plan for inventory, forbidden device pairs and latency, then local search and pair moves."""

from __future__ import annotations

import heapq
import math

from hetc.placement.evaluate import (
    _Cand,
    _chosen,
    _device_counts,
    _finish_of,
    _longest_avoiding,
    _Model,
    _paths,
    _start_of,
    _tail_on,
    _tco,
    _update_paths,
)
from hetc.placement.model import EPS_MS


class _Search:
    """Incremental state for the heuristic: choice per op, devices per class, path arrays."""

    def __init__(self, m: _Model, choice: list[int]):
        self.m = m
        self.choice = list(choice)
        self.chosen = _chosen(m, self.choice)  # the candidate of each op, kept in step with `choice`
        self.counts = _device_counts(m, self.choice)
        self.refresh()

    def refresh(self) -> None:
        self.paths = _paths(self.m, self.choice)
        self.avoiding: list[float] | None = None  # per op, the longest path avoiding it (computed on demand)

    def cand(self, v: int, k: int | None = None) -> _Cand:
        return self.m.cands[v][self.choice[v] if k is None else k]

    def allowed(self, v: int, k: int) -> bool:
        """Does op v on candidate k keep every edge of v off its forbidden device pairs?"""
        return _Moves(self, v).allowed(self.m.cands[v][k].device)

    def delta_tco(self, v: int, k: int) -> float:
        """TCO change when op v moves to candidate k (inf when it breaks the inventory or puts an edge on a
        forbidden device pair)."""
        return _Moves(self, v).delta_tco(k)

    def through(self, v: int, k: int | None = None) -> float:
        """Longest source-to-sink path through v with v on candidate k (the others unchanged). Exact."""
        return _Moves(self, v).through(k)

    def critical_after(self, v: int, k: int, moves: _Moves | None = None) -> float:
        """The critical path after moving v to k: the longer of the paths through v (exact, `through`) and
        the longest path avoiding v, which the move leaves unchanged. `moves`: v's, if the caller has them."""
        moves = moves or _Moves(self, v)
        new = moves.through(k)
        current = self.paths.critical_ms
        if new >= current - EPS_MS or moves.through() < current - EPS_MS:
            return max(new, current)
        if self.avoiding is None:
            self.avoiding = _longest_avoiding(self.m, self.chosen, self.paths)
        return max(new, self.avoiding[v])

    def move(self, v: int, k: int, update_paths: bool = True) -> None:
        old, new = self.cand(v), self.cand(v, k)
        self.counts[old.device] -= old.devices
        self.counts[new.device] += new.devices
        self.choice[v] = k
        self.chosen[v] = new
        self.avoiding = None
        if update_paths:
            _update_paths(self.m, self.chosen, self.paths, v)

    def over_capacity(self) -> list[str]:
        return [d for d, k in sorted(self.counts.items())
                if self.m.devices[d].capacity is not None and k > self.m.devices[d].capacity]


class _Moves:
    """Op v's moves in the search's current state. Every candidate of v on one device class shares its
    class's numbers: whether the edges of v allow the class, the latest arrival of v's inputs and the
    longest path after v, the transfer charges of v's edges, and the class's cost change. They are worked
    out once per class (when first asked), so the TCO change and the path through v of each candidate
    cost O(1) instead of a walk over v's edges. Each number is computed by the same operations in the same
    order as a candidate-by-candidate evaluation would, so the results are the same floats."""

    def __init__(self, s: _Search, v: int):
        self.s, self.v = s, v
        self.old = s.chosen[v]
        self._allowed: dict[str, bool] = {}
        self._path: dict[str, tuple[float, float]] = {}  # class -> (latest input arrival, longest path after)
        self._charges: dict[str, list[float]] = {}  # class -> transfer charge changes of v's edges, in order
        self._leave: float | None = None  # cost change of the old class when v leaves it (for another)

    def allowed(self, device: str) -> bool:
        if device not in self._allowed:
            m, v, chosen = self.s.m, self.v, self.s.chosen
            self._allowed[device] = (
                all((chosen[m.edges[e].src].device, device) not in m.edges[e].edge.forbidden
                    for e in m.forbidding_in[v])
                and all((device, chosen[m.edges[e].dst].device) not in m.edges[e].edge.forbidden
                        for e in m.forbidding_out[v]))
        return self._allowed[device]

    def through(self, k: int | None = None) -> float:
        """The longest source-to-sink path through v on candidate k (None: its current one)."""
        c = self.old if k is None else self.s.m.cands[self.v][k]
        path = self._path.get(c.device)
        if path is None:
            s = self.s
            path = self._path[c.device] = (_start_of(s.m, s.chosen, s.paths.finish, self.v, c.device),
                                           _tail_on(s.m, s.chosen, s.paths.tail, self.v, c.device))
        return (path[0] + c.path_ms) + path[1]

    def delta_tco(self, k: int) -> float:
        """TCO change when v moves to candidate k (inf when it breaks the inventory or puts an edge on a
        forbidden device pair)."""
        m, counts = self.s.m, self.s.counts
        old, new = self.old, m.cands[self.v][k]
        if not self.allowed(new.device):
            return math.inf
        delta = new.fixed_usd_per_hour - old.fixed_usd_per_hour
        cost = m.device_cost
        if new.device == old.device:
            count = counts[new.device]
            after = cost(new.device, count + (-old.devices + new.devices))
            if math.isinf(after):
                return math.inf
            delta += after - cost(new.device, count)
        else:
            if self._leave is None:
                count = counts[old.device]
                after = cost(old.device, count + -old.devices)
                self._leave = math.inf if math.isinf(after) else after - cost(old.device, count)
            if math.isinf(self._leave):
                return math.inf
            delta += self._leave
            count = counts[new.device]
            after = cost(new.device, count + new.devices)
            if math.isinf(after):
                return math.inf
            delta += after - cost(new.device, count)
        for charge in self._charge_changes(new.device):
            delta += charge
        return delta

    def _charge_changes(self, device: str) -> list[float]:
        """Per edge of v with a transfer charge (in, then out), the change of its charge when v moves from
        its class to `device`. Edges without a charge add nothing: they are not in the list."""
        if device not in self._charges:
            m, v, chosen, old = self.s.m, self.v, self.s.chosen, self.old.device
            changes = []
            for e in m.charged_in[v]:
                edge = m.edges[e]
                du = chosen[edge.src].device
                changes.append(edge.usd_per_hour(du, device) - edge.usd_per_hour(du, old))
            for e in m.charged_out[v]:
                edge = m.edges[e]
                dw = chosen[edge.dst].device
                changes.append(edge.usd_per_hour(device, dw) - edge.usd_per_hour(old, dw))
            self._charges[device] = changes
        return self._charges[device]


def _cheapest_choice(m: _Model) -> list[int]:
    """Per op, the candidate cheapest on its own (inf beyond a class's capacity); faster breaks ties."""
    def cheapest(cands: list[_Cand]) -> int:
        return min(range(len(cands)), key=lambda k: (m.device_cost(cands[k].device, cands[k].devices)
                                                     + cands[k].fixed_usd_per_hour, cands[k].path_ms, k))

    return [cheapest(cands) for cands in m.cands]


def _fastest_choice(m: _Model) -> list[int]:
    return [min(range(len(cs)), key=lambda k: (cs[k].path_ms, m.standalone_usd_per_hour(cs[k]), k))
            for cs in m.cands]


def _repair_inventory(s: _Search) -> bool:
    """Move ops off over-full classes: the least TCO increase per device freed first."""
    m = s.m
    for _ in range(10 * m.n + 10):
        full = s.over_capacity()
        if not full:
            return True
        best = None
        for v in range(m.n):
            old = s.cand(v)
            if old.device not in full:
                continue
            for k, new in enumerate(m.cands[v]):
                if not s.allowed(v, k):
                    continue
                # The over-full class is charged at its bought price per device freed.
                price = m.devices[old.device].usd_per_hour
                if new.device == old.device:
                    freed = old.devices - new.devices
                    if freed <= 0:
                        continue
                    delta = -freed * price
                else:
                    if new.device in full:
                        continue
                    dev = m.devices[new.device]
                    after = dev.cost_usd_per_hour(s.counts[new.device] + new.devices)
                    if math.isinf(after):
                        continue
                    freed = old.devices
                    delta = after - dev.cost_usd_per_hour(s.counts[new.device]) - freed * price
                delta += new.fixed_usd_per_hour - old.fixed_usd_per_hour
                key = (delta / freed, v, k)
                if best is None or key < best:
                    best = key
        if best is None:
            return False
        s.move(best[1], best[2])
    return not s.over_capacity()


def _forbidden_in(m: _Model, choice: list[int]) -> bool:
    return any((m.cands[e.src][choice[e.src]].device, m.cands[e.dst][choice[e.dst]].device) in e.edge.forbidden
               for e in m.edges)


def _repair_forbidden(s: _Search) -> bool:
    """Ops in topological order: one whose class makes a forbidden pair with a predecessor's moves to its
    cheapest allowed candidate (the successors are visited later). False when an op has none."""
    m = s.m
    if not any(e.edge.forbidden for e in m.edges):
        return True
    for v in m.topo:  # only the edges with forbidden pairs can forbid (m.forbidding_in)
        if all((s.cand(m.edges[e].src).device, s.cand(v).device) not in m.edges[e].edge.forbidden
               for e in m.forbidding_in[v]):
            continue
        allowed = [k for k, c in enumerate(m.cands[v])
                   if all((s.cand(m.edges[e].src).device, c.device) not in m.edges[e].edge.forbidden
                          for e in m.forbidding_in[v])]
        if not allowed:
            return False
        s.move(v, min(allowed, key=lambda k: (m.standalone_usd_per_hour(m.cands[v][k]), k)), update_paths=False)
    s.refresh()
    return not _forbidden_in(m, s.choice)


def _repair_latency(s: _Search, latency_first: bool) -> None:
    """Greedy upgrades of ops on critical paths: the least TCO increase per ms saved first (or the most ms
    saved when `latency_first`). In soft mode an upgrade is bought only while it costs less than lambda/ms.
    Lazy greedy: moves wait in a heap under the key they had when pushed; a popped move is re-evaluated and
    applied only if it is still at least as good as the next one, else pushed back with its new key."""
    m = s.m
    for _ in range(50):
        if m.limit is None or s.paths.critical_ms <= m.limit + EPS_MS:
            return
        heap = [key for v in m.topo for key in _upgrade_keys(s, v, latency_first)]
        heapq.heapify(heap)
        progressed = False
        while heap and s.paths.critical_ms > m.limit + EPS_MS:
            key = heapq.heappop(heap)
            v, k = key[2], key[3]
            fresh = _upgrade_key(s, v, k, latency_first)
            if fresh is None:
                continue
            if heap and fresh[:2] > heap[0][:2] and fresh[:2] != key[:2]:
                heapq.heappush(heap, fresh)
                continue
            s.move(v, k)
            progressed = True
            for again in _upgrade_keys(s, v, latency_first):
                heapq.heappush(heap, again)
        if not progressed:
            return


def _upgrade_key(s: _Search, v: int, k: int, latency_first: bool, moves: _Moves | None = None
                 ) -> tuple[float, float, int, int] | None:
    """Sort key of moving critical op v to k, or None when that does not shorten a critical path within the
    inventory (or, in soft mode, costs at least lambda per ms saved). `moves`: v's, if the caller has them."""
    m = s.m
    if k == s.choice[v]:
        return None
    moves = moves or _Moves(s, v)
    current = moves.through()
    if current < s.paths.critical_ms - EPS_MS:
        return None
    saved = current - moves.through(k)
    if saved <= EPS_MS:
        return None
    delta = moves.delta_tco(k)
    if math.isinf(delta):
        return None
    ratio = delta / saved
    if m.lam is not None and ratio >= m.lam:
        return None
    return (-saved, ratio, v, k) if latency_first else (ratio, -saved, v, k)


def _upgrade_keys(s: _Search, v: int, latency_first: bool) -> list[tuple[float, float, int, int]]:
    moves = _Moves(s, v)
    keys = (_upgrade_key(s, v, k, latency_first, moves) for k in range(len(s.m.cands[v])))
    return [key for key in keys if key is not None]


def _alternatives(s: _Search, v: int, moves: _Moves):
    """The candidates op v may move to (not its current one, not forbidden), with the TCO change of each."""
    for k in range(len(s.m.cands[v])):
        if k != s.choice[v]:
            delta = moves.delta_tco(k)
            if not math.isinf(delta):
                yield k, delta


def _improve(s: _Search, max_passes: int = 50, sweep: bool | None = None) -> None:
    """Local search: per op, the single-candidate change that lowers TCO + SLA penalty most, until none.

    With a hard SLA a move needs only the paths through the moved op, and ops are visited in topological
    order: a visited op's finish time is recomputed from its predecessors' (all visited), and its successors'
    tails still hold (they depend on ops not yet visited). So the paths are brought up to date once per pass,
    not after every move (which costs the whole downstream cone: quadratic on large graphs). Soft SLAs need
    the critical path after each move and update incrementally."""
    m = s.m
    sweep = m.lam is None if sweep is None else sweep  # (tests compare both ways under a hard SLA)
    for _ in range(max_passes):
        improved = False
        for v in m.topo:
            if sweep:
                s.paths.finish[v] = _finish_of(m, s.chosen, s.paths.finish, v)
            current_penalty = m.penalty(s.paths.critical_ms)
            best = None
            moves = _Moves(s, v)
            for k, delta in _alternatives(s, v, moves):
                if delta >= -1e-9 and (m.lam is None or moves.through(k) >= moves.through() - EPS_MS):
                    continue  # neither cheaper nor able to lower the penalty
                if m.lam is None:
                    if m.limit is not None and moves.through(k) > m.limit + EPS_MS:
                        continue
                    gain = delta
                else:
                    gain = delta + m.penalty(s.critical_after(v, k, moves)) - current_penalty
                if gain < -1e-9 * max(1.0, abs(delta)) and (best is None or (gain, k) < best):
                    best = (gain, k)
            if best is not None:
                s.move(v, best[1], update_paths=not sweep)
                if sweep:
                    s.paths.finish[v] = _finish_of(m, s.chosen, s.paths.finish, v)
                improved = True
        if sweep:
            s.refresh()
        if not improved:
            return


def _swap(s: _Search, max_downgrades: int = 100, max_rounds: int = 20, max_checks: int = 2000) -> bool:
    """Pair moves that single moves cannot make when the SLA binds: a cheaper, slower candidate for one op
    paid for in latency by a faster candidate for another. Downgrades are tried most-saving first; for each,
    upgrades in order of their TCO increase until the pair stops paying. Returns True if anything moved."""
    m = s.m
    moved = False
    for _ in range(max_rounds):
        current_tco = _tco(m, s.choice)
        current = current_tco + m.penalty(s.paths.critical_ms)
        downs, ups = [], []
        for v in m.topo:
            moves = _Moves(s, v)
            for k, delta in _alternatives(s, v, moves):
                if delta < -1e-9:
                    downs.append((delta, v, k))
                elif moves.through(k) < moves.through() - EPS_MS:
                    ups.append((delta, v, k))
        downs.sort()
        ups.sort()
        accepted = False
        checks = 0
        for down_delta, v1, k1 in downs[:max_downgrades]:
            old1 = s.choice[v1]
            s.move(v1, k1)
            for up_delta, v2, k2 in ups:
                if down_delta + up_delta >= 0 and m.lam is None:
                    break  # every later upgrade costs more (hard SLA: no penalty to win back)
                if v2 == v1:
                    continue
                if m.lam is None and m.limit is not None and s.through(v2, k2) > m.limit + EPS_MS:
                    continue  # paths through v2 would still break the hard limit
                delta2 = s.delta_tco(v2, k2)
                if math.isinf(delta2):
                    continue
                checks += 1
                if checks > max_checks:
                    break
                after = s.critical_after(v2, k2)
                objective = current_tco + down_delta + delta2 + m.penalty(after)
                if objective < current - 1e-9 * max(1.0, abs(current)):
                    s.move(v2, k2)
                    accepted = True
                    break
            if accepted:
                break
            s.move(v1, old1)
            if checks > max_checks:
                break
        if not accepted:
            return moved
        moved = True
        _improve(s)
    return moved


def _objective(m: _Model, choice: list[int]) -> float:
    return _tco(m, choice) + m.penalty(_paths(m, choice).critical_ms)
