"""Loops, branches and joins of a stage graph: one semantics for the planner and the simulator.

The planner (hetc/flow.py: expected and worst visits per op) and the simulator (hetc/study/simulate.py) both
build a `LoopGraph` from the same stages and edges and follow the rules below (docs/spec.md, "Loops"):

- Forward edges form a DAG. A stage runs when every *active* in-edge has delivered a token and at least
  one token is live; otherwise it is skipped and sends skips on (a join after branches works).
- A stage without forward in-edges is fed by the request's arrival: a live token if it has no in-edge at
  all (an input), a skip if back edges feed it (a loop's fix-up step runs only when its back edge fires).
- Edges with probability < 1 leaving a stage, forward or back, are exclusive alternatives: one draw per
  visit picks at most one of them. Edges with probability 1 always fire.
- A loop is the set of back edges into one header stage; its body is every stage on a forward path from
  the header to one of those back edges' sources. Loops whose bodies overlap without nesting are one loop.
  Two loops that feed each other's bodies are one loop too. The body is closed under forward paths between
  its stages, so loops nest.
- A loop runs in passes. Pass 0 is fed by the edges entering the body; pass k >= 1 only by the back edges
  that fired in pass k - 1 (live ones to their headers, the rest deliver skips): inputs from outside the
  loop do not come again. A back edge fires after pass k when its token is live and k < its
  `max_iterations`; the loop goes on while any fires, so it runs at most 1 + max(max_iterations) passes.
  A pass ends when every back edge of the loop has delivered its token.
- Edges leaving the body (forward, or back edges of an outer loop) carry the last pass's token, once, when
  the loop ends. An inner loop starts afresh on every pass of the loop around it.
- Work that cannot matter is not done: in pass k a stage that reaches neither an edge leaving the loop nor
  a back edge of the loop that may still fire (k < its bound) is skipped (the last round's tool call).

`expected_visits` computes the mean visits per request exactly, by carrying the joint distribution of
live tokens in flight through the graph in topological order (branches of one stage are correlated, so
marginals are not enough); tokens waiting for the same stage are merged, so the states grow with the
number of stages waiting for input, not with the edges in flight. `worst_visits` gives the visits at every
loop's bound.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from dataclasses import dataclass, field

MAX_STATES = 1 << 16  # joint token states carried at once; beyond this the analysis is refused (docs/spec.md)
NEGLIGIBLE = 1e-15  # probability mass below which further passes of a loop are not computed
INFINITE = math.inf


class LoopError(ValueError):
    """The graph is outside what the loop semantics define (a forward cycle, too many branch combinations)."""


@dataclass(frozen=True)
class Edge:
    src: int
    dst: int
    probability: float = 1.0
    back: bool = False
    bound: int = 0  # max_iterations of a back edge


@dataclass
class Loop:
    index: int
    body: frozenset[int]
    back: list[int]  # edge indices of its back edges
    bound: int = 0  # max over its back edges: the loop runs at most 1 + bound passes
    parent: int | None = None
    depth: int = 0
    items: list[tuple[bool, int]] = field(default_factory=list)  # (is a loop, stage or loop index), in order
    alive_until: dict[int, float] = field(default_factory=dict)  # stage -> first pass in which it is dead


class LoopGraph:
    """The loop structure of a stage graph; stages are 0..n-1."""

    def __init__(self, n: int, edges: list[Edge]):
        self.n = n
        self.edges = edges
        self.out_edges: list[list[int]] = [[] for _ in range(n)]
        self.in_edges: list[list[int]] = [[] for _ in range(n)]
        for i, e in enumerate(edges):
            self.out_edges[e.src].append(i)
            self.in_edges[e.dst].append(i)
        self.succ = [[edges[i].dst for i in out if not edges[i].back] for out in self.out_edges]
        self.pred = [[edges[i].src for i in ins if not edges[i].back] for ins in self.in_edges]
        self.order = self._topological_order()
        self.position = [0] * n
        for k, v in enumerate(self.order):
            self.position[v] = k
        self.loops = self._find_loops()
        # innermost first, per stage
        self.chain: list[list[int]] = [[] for _ in range(n)]
        for loop in sorted(self.loops, key=lambda lp: -lp.depth):
            for v in loop.body:
                self.chain[v].append(loop.index)
        self.owner = [-1] * len(edges)  # back edge -> its loop
        for loop in self.loops:
            for i in loop.back:
                self.owner[i] = loop.index
        self.exits = [self._exit_chain(i) for i in range(len(edges))]  # loops an edge leaves, innermost first
        self.enters = [self._entered(i) for i in range(len(edges))]  # loops an edge enters
        self.top_items = self._order_items(None)
        for loop in self.loops:
            loop.items = self._order_items(loop)
            self._mark_alive(loop)
        self.sources = [v for v in range(n) if not self.pred[v]]  # fed by the request's arrival
        self.arrival_live = [not self.in_edges[v] for v in range(n)]  # a skip to stages only back edges feed
        self.first_pass_dead = self._first_pass_dead()
        self._totals: list[float] | None = None

    # ------------------------------------------------------------------ structure
    def _topological_order(self) -> list[int]:
        """The lowest-numbered ready stage first: stages come in the order they were written, so few of them
        wait for input at any point (a depth-first order would leave whole branches waiting)."""
        indegree = [len(p) for p in self.pred]
        ready = [v for v in range(self.n) if indegree[v] == 0]
        order = []
        while ready:
            v = heapq.heappop(ready)
            order.append(v)
            for w in self.succ[v]:
                indegree[w] -= 1
                if indegree[w] == 0:
                    heapq.heappush(ready, w)
        if len(order) != self.n:
            raise LoopError("the forward edges form a cycle: every cycle needs a back edge with max_iterations")
        return order

    def _reach(self, starts: set[int], graph, within: set[int] | None = None, lo: int = 0,
               hi: int | None = None) -> set[int]:
        """Stages reachable from `starts` along `graph`, among `within` and those at topological positions
        lo..hi (a path between two stages stays between their positions: the search stops there, so finding
        one loop does not walk the whole graph)."""
        hi = self.n if hi is None else hi
        position = self.position
        seen = set(starts)
        todo = list(starts)
        while todo:
            for w in graph[todo.pop()]:
                if w not in seen and lo <= position[w] <= hi and (within is None or w in within):
                    seen.add(w)
                    todo.append(w)
        return seen

    def _find_loops(self) -> list[Loop]:
        by_header: dict[int, tuple[set[int], list[int]]] = {}
        for i, e in enumerate(self.edges):
            if not e.back:
                continue
            lo, hi = self.position[e.dst], self.position[e.src]
            body = self._reach({e.dst}, self.succ, lo=lo, hi=hi) & self._reach({e.src}, self.pred, lo=lo, hi=hi)
            if e.src not in body:
                raise LoopError(f"back edge {e.src} -> {e.dst} does not close a cycle")
            group = by_header.setdefault(e.dst, (set(), []))
            group[0].update(body)
            group[1].append(i)
        groups = [(self._convex(body), back, {h}) for h, (body, back) in by_header.items()]
        while self._nest_or_merge(groups):
            pass
        groups.sort(key=lambda g: (-len(g[0]), min(self.position[v] for v in g[0])))
        loops = [Loop(k, frozenset(body), sorted(back), max(self.edges[i].bound for i in back))
                 for k, (body, back, _) in enumerate(groups)]
        for loop in loops:  # the smallest strictly larger body is the parent (bodies are laminar)
            outer = [o for o in loops if o is not loop and loop.body < o.body]
            if outer:
                parent = min(outer, key=lambda o: len(o.body))
                loop.parent = parent.index
        for loop in loops:  # parents come first (sorted by size)
            loop.depth = 0 if loop.parent is None else loops[loop.parent].depth + 1
        return loops

    def _nest_or_merge(self, groups: list[tuple[set[int], list[int], set[int]]]) -> bool:
        """One step towards nested loops: a loop whose header lies in another's body runs inside it (its
        body joins the outer one: a tool loop's call may lead only back to its header). Loops that hold each
        other's headers, or overlap otherwise, are one loop. Returns whether anything changed."""
        for a, (outer, outer_back, outer_heads) in enumerate(groups):
            for b, (inner, inner_back, inner_heads) in enumerate(groups):
                if a == b or not (inner_heads & outer) or inner <= outer:
                    continue
                if outer_heads & inner:
                    groups[a] = (self._convex(outer | inner), outer_back + inner_back, outer_heads | inner_heads)
                    del groups[b]
                else:
                    groups[a] = (self._convex(outer | inner), outer_back, outer_heads)
                return True
        for a, (x, x_back, x_heads) in enumerate(groups):
            for b in range(a + 1, len(groups)):
                y, y_back, y_heads = groups[b]
                if (x & y and not (x < y or y < x)) or (not x & y and self._feed_each_other(x, y)):
                    groups[a] = (self._convex(x | y), x_back + y_back, x_heads | y_heads)
                    del groups[b]
                    return True
        return False

    def _feed_each_other(self, x: set[int], y: set[int]) -> bool:
        """Whether forward paths lead from loop body x into y and from y into x: neither loop can run its
        passes before the other, so they are one loop."""
        lo_x, hi_x = min(self.position[v] for v in x), max(self.position[v] for v in x)
        lo_y, hi_y = min(self.position[v] for v in y), max(self.position[v] for v in y)
        if hi_x < lo_y or hi_y < lo_x:  # one lies wholly before the other in topological order
            return False
        return (bool(self._reach(x, self.succ, lo=lo_x, hi=hi_y) & y)
                and bool(self._reach(y, self.succ, lo=lo_y, hi=hi_x) & x))

    def _convex(self, body: set[int]) -> set[int]:
        """Add every stage on a forward path between two stages of the body."""
        lo, hi = min(self.position[v] for v in body), max(self.position[v] for v in body)
        return self._reach(body, self.succ, lo=lo, hi=hi) & self._reach(body, self.pred, lo=lo, hi=hi)

    def innermost(self, v: int) -> int | None:
        chain = self.chain[v]
        return chain[0] if chain else None

    def _internal(self, loop: Loop, i: int) -> bool:
        e = self.edges[i]
        if e.back:
            o = self.owner[i]
            while o is not None:
                if o == loop.index:
                    return True
                o = self.loops[o].parent
            return False
        return e.dst in loop.body

    def _exit_chain(self, i: int) -> list[int]:
        return [m for m in self.chain[self.edges[i].src] if not self._internal(self.loops[m], i)]

    def _entered(self, i: int) -> list[int]:
        e = self.edges[i]
        if e.back:  # the loops inside the owner that hold the header start afresh
            owner = self.loops[self.owner[i]]
            return [m for m in self.chain[e.dst] if self.loops[m].body < owner.body]
        return [m for m in self.chain[e.dst] if e.src not in self.loops[m].body]

    def _item_of(self, v: int, level: int | None) -> tuple[bool, int]:
        """The item of region `level` (a loop index, None for the top) that holds stage v."""
        chain = self.chain[v]
        below = chain if level is None else chain[:chain.index(level)]
        return (True, below[-1]) if below else (False, v)

    def _order_items(self, loop: Loop | None) -> list[tuple[bool, int]]:
        """The region's stages and inner loops (as units) in a topological order, earliest stage first."""
        level = None if loop is None else loop.index
        stages = self.order if loop is None else sorted(loop.body, key=self.position.__getitem__)
        item_of = {v: self._item_of(v, level) for v in stages}
        first: dict[tuple[bool, int], int] = {}
        for v in stages:
            first.setdefault(item_of[v], self.position[v])
        succ: dict[tuple[bool, int], set[tuple[bool, int]]] = {item: set() for item in first}
        indegree = dict.fromkeys(first, 0)
        for v in stages:
            for w in self.succ[v]:
                a, b = item_of[v], item_of.get(w)
                if b is not None and a != b and b not in succ[a]:
                    succ[a].add(b)
                    indegree[b] += 1
        ready = [(first[item], item) for item, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        items = []
        while ready:
            _, item = heapq.heappop(ready)
            items.append(item)
            for nxt in succ[item]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    heapq.heappush(ready, (first[nxt], nxt))
        if len(items) != len(first):  # bodies are closed under forward paths, so this does not happen
            raise LoopError("the loops of the graph do not nest")
        return items

    def _mark_alive(self, loop: Loop) -> None:
        """alive_until[v]: passes 0..alive_until-1 of the loop may need v (INFINITE: it reaches an exit).
        Paths go through inner loops, whose back edges lead on to their exits."""
        body = set(loop.body)
        targets: dict[int, float] = defaultdict(float)
        preds: dict[int, list[int]] = {v: [] for v in body}
        for v in body:
            for i in self.out_edges[v]:
                e = self.edges[i]
                if not self._internal(loop, i):
                    targets[v] = INFINITE
                elif self.owner[i] == loop.index:
                    targets[v] = max(targets[v], e.bound)
                else:  # a forward edge in the body, or an inner loop's back edge
                    preds[e.dst].append(v)
        alive = dict(targets)
        todo = sorted(body, key=lambda v: -alive.get(v, 0.0))
        for v in body:
            alive.setdefault(v, 0.0)
        while todo:  # longest-bound propagation backwards (a fixpoint: inner loops make cycles)
            v = todo.pop()
            for u in preds[v]:
                if alive[v] > alive[u]:
                    alive[u] = alive[v]
                    todo.append(u)
        loop.alive_until = alive

    def _first_pass_dead(self) -> list[set[int]]:
        """Per loop, the body stages no live token can reach in its first pass: those fed, through the body's
        forward edges and inner loops, only by stages that only back edges of the loop feed."""
        dead = []
        for loop in self.loops:
            starts = set()
            for v in loop.body:
                for i in self.in_edges[v]:
                    e = self.edges[i]
                    if (not e.back and e.src not in loop.body) or (e.back and loop.index in self.enters[i]):
                        starts.add(v)  # entered from outside the loop (or a back edge of a loop around it)
            inner = {v: [self.edges[i].dst for i in self.out_edges[v]
                         if not self.edges[i].back or (self.owner[i] != loop.index and self._internal(loop, i))]
                     for v in loop.body}
            dead.append(set(loop.body) - self._reach(starts, inner, set(loop.body)))
        return dead

    # ------------------------------------------------------------------ worst case
    def worst_visits(self) -> list[float]:
        """Visits per request with every loop at its bound (and live: branches taken)."""
        worst = [1.0] * self.n
        for v in range(self.n):
            for m in self.chain[v]:
                loop = self.loops[m]
                passes = min(loop.bound + 1, loop.alive_until[v])
                worst[v] *= max(0, passes - 1) if v in self.first_pass_dead[m] else passes
        return worst

    # ------------------------------------------------------------------ expected visits
    def expected_visits(self) -> list[float]:
        """Mean visits per request of every stage (sources are fed once per request)."""
        return self._expected()[:self.n]

    def expected_traversals(self) -> list[float]:
        """Mean deliveries per request of a live token along every edge (the data it moves)."""
        return self._expected()[self.n:]

    def _expected(self) -> list[float]:
        """Stage visits, then edge traversals (at index n + edge)."""
        if self._totals is None:
            self._prepare_tokens()
            totals = [0.0] * (self.n + len(self.edges))
            self._memo: dict[tuple, tuple[dict[frozenset, float], dict[int, float]]] = {}
            start = frozenset(v for v in self.sources if self.arrival_live[v])
            self._region(None, {start: 1.0}, frozenset(), totals, 1.0)
            self._totals = totals
        return self._totals

    # A token in flight is a key in a state (a frozenset of the live tokens). Key n + i is a live token on
    # edge i. Once a forward edge's token can no longer be discarded by a loop (it does not leave a loop, or
    # the loops it leaves have ended), only "some live token waits for stage v" matters to v, so it becomes
    # key v and its traversal is counted then: tokens into one stage merge, which keeps the number of states
    # at about 2 ** (stages waiting for input) instead of 2 ** (edges in flight). Live sources start as key v.
    # MERGE_BY_DESTINATION = False keeps every token on its edge (the plain reading; the tests compare both).
    MERGE_BY_DESTINATION = True

    def _prepare_tokens(self) -> None:
        """Per edge, the key its token is sent as and where it lands; per stage and loop, the keys they take."""
        n, merge = self.n, self.MERGE_BY_DESTINATION
        merges = [merge and not e.back for e in self.edges]
        # the key a live token on edge i gets when sent (a key v < n is counted as a traversal then)
        self._produced = [e.dst if merges[i] and not self.exits[i] else n + i for i, e in enumerate(self.edges)]
        self._dead_on_entry = [any(self.loops[m].alive_until[e.dst] <= 0 for m in self.enters[i])
                               for i, e in enumerate(self.edges)]
        # the loop at whose end a token leaving loops lands (becomes key dst)
        self._lands_after = [self.exits[i][-1] if merges[i] and self.exits[i] else None
                             for i in range(len(self.edges))]
        self._consumed = [frozenset([v] + [n + i for i in self.in_edges[v] if not merges[i]]) for v in range(n)]
        self._entries = {}
        for loop in self.loops:
            keys = set()
            for v in loop.body:
                keys.add(v)
                keys.update(n + i for i in self.in_edges[v] if not merges[i] and loop.index in self.enters[i])
            self._entries[loop.index] = frozenset(keys)

    def _region(self, loop: Loop | None, states: dict[frozenset, float], dead: frozenset[int],
                acc, scale: float) -> dict[frozenset, float]:
        """One pass over a region's items; returns the distribution of live tokens left (exits, back edges)."""
        for is_loop, index in (self.top_items if loop is None else loop.items):
            if is_loop:
                states = self._loop_item(self.loops[index], states, dead, acc, scale)
            else:
                states = self._stage_item(index, states, dead, acc, scale)
            if len(states) > MAX_STATES:
                raise LoopError(f"more than {MAX_STATES} combinations of branches are open at once; "
                                "the expected visits cannot be computed exactly")
        return states

    def _sent(self, i: int, dead: frozenset[int]) -> tuple[int, bool]:
        """The key of a live token sent on edge i, and whether its traversal is counted now (it will reach
        a stage that runs)."""
        key = self._produced[i]
        return key, key < self.n and key not in dead and not self._dead_on_entry[i]

    def _stage_item(self, v: int, states, dead, acc, scale) -> dict[frozenset, float]:
        ins = self._consumed[v]
        n = self.n
        branches = [(i, self.edges[i].probability, *self._sent(i, dead))
                    for i in self.out_edges[v] if self.edges[i].probability < 1.0]
        always = [(i, *self._sent(i, dead)) for i in self.out_edges[v] if self.edges[i].probability >= 1.0]
        always_keys = frozenset(key for _, key, _ in always)
        rest = 1.0 - sum(q for _, q, _, _ in branches)
        out: dict[frozenset, float] = defaultdict(float)
        for state, p in states.items():
            arrived = state & ins
            if not arrived:
                out[state] += p
                continue
            state = state - arrived
            if v in dead:  # nothing is sent to work that is not done
                out[state] += p
                continue
            weight = p * scale
            for key in arrived:
                if key >= n:  # a token still on its edge is counted on delivery
                    acc[key] += weight
            acc[v] += weight
            for i, _, counted in always:
                if counted:
                    acc[n + i] += weight
            base = state | always_keys
            for i, q, key, counted in branches:
                out[base | {key}] += p * q
                if counted:
                    acc[n + i] += weight * q
            if rest > 1e-12:
                out[base] += p * rest
        return out

    def _loop_item(self, loop: Loop, states, dead, acc, scale) -> dict[frozenset, float]:
        entries = self._entries[loop.index]
        inner_dead = dead & loop.body
        out: dict[frozenset, float] = defaultdict(float)
        for state, p in states.items():
            entry = state & entries
            key = (loop.index, entry, inner_dead)
            if key not in self._memo:
                visits: dict[int, float] = defaultdict(float)
                self._memo[key] = (self._run_loop(loop, entry, inner_dead, visits), visits)
            exits, visits = self._memo[key]
            for v, x in visits.items():
                acc[v] += x * p * scale
            rest = state - entry
            for exit_state, q in exits.items():
                out[rest | self._land(loop, exit_state, dead, acc, p * q * scale)] += p * q
        return out

    def _land(self, loop: Loop, exit_state: frozenset, dead: frozenset[int], acc, weight: float) -> frozenset:
        """Tokens leaving `loop` whose last loop it is become keys of their stages (and are counted)."""
        landed = []
        for key in exit_state:
            i = key - self.n
            if self._lands_after[i] != loop.index:
                landed.append(key)
                continue
            dst = self.edges[i].dst
            landed.append(dst)
            if dst not in dead and not self._dead_on_entry[i]:
                acc[key] += weight
        return frozenset(landed)

    def _run_loop(self, loop: Loop, entry: frozenset, dead: frozenset, visits) -> dict[frozenset, float]:
        n = self.n
        own = {n + i for i in loop.back}
        leaving = {n + i for v in loop.body for i in self.out_edges[v] if not self._internal(loop, i)}
        exits: dict[frozenset, float] = defaultdict(float)
        states = {entry: 1.0}
        thresholds = sorted({t for t in loop.alive_until.values() if t != INFINITE})
        dead_now = dead
        for k in range(loop.bound + 1):
            if k in thresholds or k == 0:
                dead_now = dead | frozenset(v for v, t in loop.alive_until.items() if k >= t)
            ends = self._region(loop, states, dead_now, visits, 1.0)
            states = defaultdict(float)
            for state, p in ends.items():
                fired = frozenset(key for key in state & own if k < self.edges[key - n].bound)
                if fired:
                    states[fired] += p
                else:
                    exits[state & leaving] += p
            if sum(states.values()) < NEGLIGIBLE:
                break  # no back edge fires at the bound, so this ends the loop at the latest after pass `bound`
        return dict(exits)
