"""Placement solve time vs graph size, exact (HiGHS MILP) and heuristic, with the heuristic's gap.

    python bench/placement.py                      # default sizes 10 .. 2000 ops, chains and branches
    python bench/placement.py --sizes 10 100 --time-limit 30

Synthetic graphs (seeded, so every run builds the same problems): 'chain' is a line of ops; 'branch' is a
line of fork-join stages (1-4 parallel ops per stage). Each op has 4-12 candidates drawn from six device
classes (one CPU, five accelerators with different price/speed trade-offs, tensor-parallel degrees 1-4); an
edge between different classes costs 0.5-5 ms and a small per-traversal $; one class has sunk inventory and
one a purchase cap. The end-to-end limit sits 35% of the way from the fastest-per-op latency to the
cheapest-per-op latency, so it binds. Columns: exact time/status/objective, heuristic time/objective, the
heuristic's gap to the LP bound it reports, and its excess over the exact plan (marked * when the exact
solver stopped at its time limit, so the comparison is with its best plan, not a proven optimum).
"""

from __future__ import annotations

import argparse
import random

from hetc.placement import Candidate, DeviceClass, Edge, OpNode, PlacementProblem, solve

# Synthetic device classes: (name, $/h, relative speed). Made-up but ordered like a real pool: faster
# classes cost more per hour.
CLASSES = [("cpu", 0.3, 0.25), ("acc1", 1.2, 1.0), ("acc2", 2.0, 1.7), ("acc3", 3.1, 2.4), ("acc4", 4.5, 3.6),
           ("acc5", 6.0, 4.5)]


def synthetic_problem(shape: str, n_ops: int, seed: int = 0) -> PlacementProblem:
    rng = random.Random(f"{shape}-{n_ops}-{seed}")
    devices = [DeviceClass("cpu", 0.3, accelerator=False), DeviceClass("acc1", 1.2),
               DeviceClass("acc2", 2.0, sunk_usd_per_hour=0.3, owned=max(2, n_ops // 10)),
               DeviceClass("acc3", 3.1, max_bought=max(4, n_ops // 4)), DeviceClass("acc4", 4.5),
               DeviceClass("acc5", 6.0)]
    ops: list[OpNode] = []
    for i in range(n_ops):
        work_ms = rng.uniform(5, 60)
        cands = []
        for _ in range(rng.randint(4, 12)):
            name, _, speed = rng.choice(CLASSES)
            tp = rng.choice([1, 1, 2, 4]) if name != "cpu" else 1
            latency = work_ms / (speed * tp ** 0.8) * rng.uniform(0.85, 1.15)
            throughput = speed * tp * rng.uniform(2, 6)
            cands.append(Candidate(name, round(latency, 3), round(throughput, 3), tp=tp,
                                   batch=rng.choice([1, 4, 16])))
        ops.append(OpNode(f"op{i}", cands, load=rng.choice([1.0, 1.0, 1.0, 2.0, 0.5])))
    transfers = {(a, b): (round(rng.uniform(0.5, 5), 2), round(rng.uniform(0, 2e-6), 9))
                 for a, *_ in CLASSES for b, *_ in CLASSES if a != b}
    edges: list[Edge] = []
    if shape == "chain":
        edges = [Edge(f"op{i}", f"op{i + 1}", transfers) for i in range(n_ops - 1)]
    else:
        previous: list[int] = []
        i = 0
        while i < n_ops:
            width = min(rng.randint(1, 4), n_ops - i)
            stage = list(range(i, i + width))
            edges += [Edge(f"op{a}", f"op{b}", transfers) for a in previous for b in stage]
            previous, i = stage, i + width
    problem = PlacementProblem(ops, edges, devices, request_rate_rps=20.0)
    fastest = _critical_ms(problem, lambda op: min(c.latency_ms for c in op.candidates))
    cheapest = _critical_ms(problem, lambda op: min(op.candidates, key=lambda c: _standalone(c, devices))
                            .latency_ms)
    limit = fastest + 0.35 * max(0.0, cheapest - fastest) + 5.0  # + 5 ms for a few transfers
    return PlacementProblem(ops, edges, devices, 20.0, latency_limit_ms=round(limit, 3))


def _standalone(c: Candidate, devices: list[DeviceClass]) -> float:
    price = next(d.usd_per_hour for d in devices if d.name == c.device)
    return price * c.devices_per_replica / c.throughput_rps


def _critical_ms(problem: PlacementProblem, latency) -> float:
    finish: dict[str, float] = {}
    incoming: dict[str, list[str]] = {op.id: [] for op in problem.ops}
    for e in problem.edges:
        incoming[e.dst].append(e.src)
    for op in problem.ops:  # ops are listed in topological order
        finish[op.id] = max((finish[u] for u in incoming[op.id]), default=0.0) + latency(op)
    return max(finish.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 200, 500, 1000, 2000])
    parser.add_argument("--shapes", nargs="+", default=["chain", "branch"])
    parser.add_argument("--time-limit", type=float, default=60.0, help="exact solver limit, seconds")
    parser.add_argument("--exact-max-ops", type=int, default=2000, help="skip the exact solver above this")
    args = parser.parse_args()
    solve(synthetic_problem("chain", 3), "heuristic")  # warm up: scipy's import is not solve time
    header = (f"{'shape':6} {'ops':>5} {'bins':>6} {'exact s':>8} {'status':>10} {'exact $/h':>10} "
              f"{'heur s':>7} {'heur $/h':>10} {'gap LB':>7} {'vs exact':>8}")
    print(header)
    print("-" * len(header))
    for shape in args.shapes:
        for n in args.sizes:
            problem = synthetic_problem(shape, n)
            binaries = sum(len(op.candidates) for op in problem.ops)
            heuristic = solve(problem, "heuristic")
            exact = solve(problem, "exact", time_limit_s=args.time_limit) if n <= args.exact_max_ops else None
            exact_cols = "        -          -          -"
            versus = "-"
            if exact is not None:
                objective = f"{exact.objective:10.2f}" if exact.feasible else f"{'-':>10}"
                exact_cols = f"{exact.solve_time_s:8.2f} {exact.status:>10} {objective}"
                if exact.feasible and heuristic.feasible:
                    # '*': the exact solver hit its time limit; compared with its best plan, not the optimum
                    mark = "" if exact.status == "optimal" else "*"
                    versus = f"{100 * (heuristic.objective / exact.objective - 1):7.2f}%{mark}"
            if heuristic.feasible:
                heur_cols = f"{heuristic.solve_time_s:7.2f} {heuristic.objective:10.2f} {100 * heuristic.gap:6.2f}%"
            else:
                heur_cols = f"{heuristic.solve_time_s:7.2f} {'infeasible':>10} {'-':>7}"
            print(f"{shape:6} {n:5d} {binaries:6d} {exact_cols} {heur_cols} {versus:>8}", flush=True)


if __name__ == "__main__":
    main()
