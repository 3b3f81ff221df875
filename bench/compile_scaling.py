"""How compile time and memory grow with the agent graph: 10, 100, 1,000 and 10,000 nodes.

    python bench/compile_scaling.py                       # all sizes, --solver auto, 1 run each
    python bench/compile_scaling.py --sizes 10 100 1000 --repeat 3
    python bench/compile_scaling.py --solver heuristic --no-codegen
    python bench/compile_scaling.py --auto-threshold      # where --solver auto switches to the heuristic

Each size is compiled in its own subprocess (`--one N`), so peak memory (ru_maxrss) is that compile's
alone. The synthetic graph (`synthetic_spec`) is seeded: one input, N - 2 mixed work nodes (LLM calls,
tools, embeddings, vector lookups, compute steps) in a layered DAG where each node reads from one or two
recent nodes, a bounded loop every 50 nodes, branches with probabilities, and one output. Per stage it
prints the wall time (CompileResult.timings: load, frontend, every pass, codegen, plan, deploy, report, and
bundle from write()) and the growth exponent: the log-log slope of time against node count between
consecutive sizes (1 = linear, 2 = quadratic). Targets (issue 8): 1,000 nodes end to end < 10 s; 10,000
nodes < 120 s with peak memory < 2 GB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10, 100, 1_000, 10_000)
SEED = 8
LOOP_EVERY = 50  # a back edge with max_iterations closes a short cycle this often
WINDOW = 6  # a node reads from one of the WINDOW nodes before it: graph width stays bounded
TARGETS_S = {1_000: 10.0, 10_000: 120.0}
TARGET_PEAK_MB = {10_000: 2048.0}
TARGETS_CPU_S = {10_000: (30.0, 10.0)}  # issue 13: CPU seconds, and at most this many times xDSL's floor

# kind -> (payloads it accepts (hetc/dialects/agent/), payload it produces (None: its first input's), fields)
KINDS = {
    "llm": (("text", "documents", "json", "embedding"), "text", "model: chat, input_tokens: 1024, output_tokens: 128"),
    "tool": (None, "documents", "latency_ms: 200, response_kb: 8"),
    "embedding": (("text", "documents", "json"), "embedding", "model: embedder, tokens: 256"),
    "memory_lookup": (("text", "documents", "json", "embedding"), "documents", "n_vectors: 100000, dim: 1024"),
    "compute": (None, None, "cpu_ms: 2, op: softmax"),
}
MIX = ["llm", "tool", "compute", "embedding", "memory_lookup", "tool", "compute", "llm"]


def synthetic_spec(n_nodes: int, seed: int = SEED, forward_branches: bool = True) -> str:
    """A valid spec of exactly n_nodes nodes (n_nodes >= 3), as compact YAML. Without `forward_branches` the
    second input edges that would be branches (probability 0.5) are plain edges; the loops keep theirs."""
    rng = random.Random(seed)
    ids = [f"n{i}" for i in range(n_nodes)]
    kind_of = {ids[0]: "input"}
    payload = {ids[0]: "text"}
    branch_sum = {ids[0]: 0.0}  # probabilities of the branches leaving each node (at most 1)
    has_out = {ids[0]: False}
    lines = ["hetc: 1", f"name: scale-{n_nodes}", "slo: {latency_ms: {p99: 1.0e7}}", "traffic: {requests_per_s: 5}",
             "models:", "  chat: {preset: llama-3-8b, precision: fp8}", "  embedder: {preset: bge-large-en-v1.5}",
             "hardware: {pool: [intel-xeon-8480, nvidia-h100-sxm, nvidia-h200, intel-gaudi3]}",
             "nodes:", f"  {ids[0]}: {{kind: input, produces: text, tokens: 256}}"]
    edges: list[str] = []

    def accepts(kind: str, src: str) -> bool:
        wanted = KINDS[kind][0] if kind in KINDS else None
        return wanted is None or payload[src] in wanted

    def edge(src: str, dst: str, probability: float = 1.0, max_iterations: int = 0) -> None:
        attrs = []
        if probability < 1.0 and branch_sum[src] + probability <= 1.0:
            branch_sum[src] += probability
            attrs.append(f"probability: {probability}")
        if max_iterations:
            attrs.append(f"max_iterations: {max_iterations}")
        edges.append(f"  - {src} -> {dst}" + (f": {{{', '.join(attrs)}}}" if attrs else ""))
        has_out[src] = has_out[src] or not max_iterations  # a back edge does not lead to the output

    for i in range(1, n_nodes - 1):
        node = ids[i]
        window = ids[max(0, i - WINDOW):i]
        kind = MIX[rng.randrange(len(MIX))]
        sources = [s for s in window if accepts(kind, s)]
        if not sources:
            kind, sources = "tool", window
        src = rng.choice(sources)
        _, produces, fields = KINDS[kind]
        kind_of[node], payload[node], branch_sum[node], has_out[node] = kind, produces or payload[src], 0.0, False
        lines.append(f"  {node}: {{kind: {kind}, {fields}}}")
        edge(src, node)  # the first edge: a compute node passes this payload on
        second = rng.choice(window)
        if second != src and rng.random() < 0.3 and accepts(kind, second):
            probability = 0.5 if rng.random() < 0.5 else 1.0
            edge(second, node, probability=probability if forward_branches else 1.0)
        if i % LOOP_EVERY == 0 and kind_of[src] != "input" and accepts(kind_of[src], node):
            edge(node, src, probability=0.25, max_iterations=2)  # a bounded retry loop src -> node -> src
    out = ids[-1]
    lines.append(f"  {out}: {{kind: output}}")
    for node_id, used in has_out.items():
        if not used:
            edges.append(f"  - {node_id} -> {out}")
    return "\n".join(lines + ["edges:"] + edges) + "\n"


def _count_binaries(stats: dict) -> None:
    """Record the largest placement problem solved: its (op, candidate) pairs and ops; and the number of solves."""
    import hetc.placement.problem as placement_problem
    import hetc.placement.solver as placement_solver

    original = placement_solver.solve

    def solve(problem, solver, **kwargs):  # the first call is the plan; later ones the homogeneous baselines
        binaries = sum(len(op.candidates) for op in problem.ops)
        if binaries > stats.get("binaries", -1):
            stats["binaries"], stats["ops"] = binaries, len(problem.ops)
        stats["solves"] = stats.get("solves", 0) + 1
        return original(problem, solver, **kwargs)

    placement_problem.solve = placement_solver.solve = solve  # the plan's solve, and the baselines'


def run_one(n_nodes: int, solver: str, codegen: bool, forward_branches: bool = True) -> dict:
    """Compile one synthetic graph in this process; the stage timings (wall and CPU), peak memory and plan
    facts; then xDSL's floor for a module of as many ops (`xdsl_floor`), in the same process."""
    from hetc.compiler import CompileOptions, compile_spec, write
    from hetc.placement import AUTO_EXACT_MAX_BINARIES

    stats: dict = {}
    _count_binaries(stats)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / f"scale-{n_nodes}.yaml"
        spec.write_text(synthetic_spec(n_nodes, forward_branches=forward_branches))
        start, cpu = time.perf_counter(), time.process_time()
        result = compile_spec(str(spec), CompileOptions(solver=solver, codegen=codegen))
        manifest = write(result, Path(tmp) / "bundle")
        total_s, total_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        spec_bytes = spec.stat().st_size
        ir_bytes = sum(len(data) for name, data in result.files.items() if name.startswith("ir/"))
    plan = result.plan or {}
    shape = module_shape(result.module)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "nodes": n_nodes, "spec_bytes": spec_bytes, "total_s": total_s, "total_cpu_s": total_cpu_s,
        "timings_s": result.timings, "cpu_timings_s": result.cpu_timings, "peak_mb": peak_mb,
        "solver": plan.get("provenance", {}).get("solver"), "lower_bound": plan.get("provenance", {}).get("lower_bound"),
        "stages": len(plan.get("stages", [])), "files": len(manifest["files"]), "ir_bytes": ir_bytes,
        "auto_exact_max_binaries": AUTO_EXACT_MAX_BINARIES, **stats, **shape,
        "floor_s": xdsl_floor(shape["ops"], shape["entries_per_op"]),
    }


def module_shape(module) -> dict:
    """The final module's op count and its mean properties + attributes per op (what the floor mirrors)."""
    ops = [op for op in module.walk() if op is not module]
    entries = sum(len(op.properties) + len(op.attributes) for op in ops)
    return {"ops": len(ops), "entries_per_op": entries / max(1, len(ops))}


def xdsl_floor(n_ops: int, entries_per_op: float) -> dict[str, float]:
    """CPU seconds xDSL itself takes to build, verify and print (in the generic form hetc's bundle keeps) a
    module of `n_ops` IRDL ops, each with one result, one or two operands from recent ops and
    `entries_per_op` properties and attributes of plain values (a name, integers). What hetc adds beyond this is
    its own work: no compile of as many ops can print them faster than xDSL does. The fastest of FLOOR_RUNS."""
    return min((_floor_once(n_ops, entries_per_op) for _ in range(FLOOR_RUNS)), key=lambda t: t["total"])


FLOOR_RUNS = 3  # the floor is the fastest of these: on a shared machine CPU time varies by tens of percent


def _floor_once(n_ops: int, entries_per_op: float) -> dict[str, float]:
    import io

    from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
    from xdsl.irdl import IRDLOperation, irdl_op_definition, prop_def, result_def, var_operand_def
    from xdsl.printer import Printer

    @irdl_op_definition
    class FloorOp(IRDLOperation):
        name = "floor.op"
        sym_name = prop_def(StringAttr)
        size = prop_def(IntegerAttr)
        ins = var_operand_def()
        out = result_def()

    extra = max(0, round(entries_per_op) - 2)  # beyond the two properties: discardable attributes
    rng = random.Random(SEED)
    times = {}
    cpu = time.process_time()
    ops: list = []
    for i in range(n_ops):
        recent = ops[max(0, i - WINDOW):i]
        inputs = [op.results[0] for op in rng.sample(recent, min(len(recent), rng.choice((1, 2))))]
        ops.append(FloorOp.create(operands=inputs, result_types=[i64], properties={
            "sym_name": StringAttr(f"n{i}"), "size": IntegerAttr(i, 64)},
            attributes={f"a{k}": IntegerAttr(k, 64) for k in range(extra)}))
    module = ModuleOp(ops)
    times["build"] = time.process_time() - cpu
    cpu = time.process_time()
    module.verify()
    times["verify"] = time.process_time() - cpu
    cpu = time.process_time()
    Printer(stream=io.StringIO(), print_generic_format=True).print_op(module)  # as the bundle keeps it
    times["print"] = time.process_time() - cpu
    times["total"] = times["build"] + times["verify"] + times["print"]
    return times


def run_in_subprocess(n_nodes: int, solver: str, codegen: bool, forward_branches: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--one", str(n_nodes), "--solver", solver] + ([] if codegen else ["--no-codegen"])
    cmd += [] if forward_branches else ["--no-forward-branches"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"nodes": n_nodes, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def slope(points: list[tuple[float, float]]) -> float | None:
    """Log-log slope between two (nodes, seconds) points; None when a time is too small to mean anything."""
    (n1, t1), (n2, t2) = points
    if min(t1, t2) < 1e-3:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def report(rows: list[dict]) -> None:
    ok = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            print(f"{r['nodes']:>6} nodes: FAILED: {r['error']}")
    if not ok:
        return
    stages = sorted({k for r in ok for k in r["timings_s"]}, key=lambda k: (k.startswith("pass:"), k))
    order = ["load", "frontend", "passes"] + [s for s in stages if s.startswith("pass:")] + \
            [s for s in ("codegen", "plan", "deploy", "report", "bundle") if s in stages]
    header = f"{'stage':<26}" + "".join(f"{r['nodes']:>10,}" for r in ok) + "   growth exponent (log-log slope)"
    print(header)
    print("-" * len(header))
    for stage in order + ["total"]:
        times = [r["total_s"] if stage == "total" else r["timings_s"].get(stage, 0.0) for r in ok]
        slopes = [slope([(a["nodes"], ta), (b["nodes"], tb)])
                  for (a, ta), (b, tb) in itertools.pairwise(zip(ok, times, strict=True))]
        shown = " ".join("  -- " if s is None else f"{s:5.2f}" for s in slopes)
        print(f"{stage:<26}" + "".join(f"{t:10.3f}" for t in times) + f"   {shown}")
    print(f"\n{'CPU seconds':<26}" + "".join(f"{r['nodes']:>10,}" for r in ok))
    print("-" * len(header))
    for stage in order + ["total"]:
        times = [r["total_cpu_s"] if stage == "total" else r["cpu_timings_s"].get(stage, 0.0) for r in ok]
        print(f"{stage:<26}" + "".join(f"{t:10.3f}" for t in times))
    print(f"{'final IR ops':<26}" + "".join(f"{r['ops']:>10,}" for r in ok))
    print(f"{'attributes per op':<26}" + "".join(f"{r['entries_per_op']:10.1f}" for r in ok))
    for part in ("build", "verify", "print", "total"):
        print(f"{'xDSL floor: ' + part:<26}" + "".join(f"{r['floor_s'][part]:10.3f}" for r in ok))
    print(f"{'hetc CPU / floor':<26}" + "".join(f"{r['total_cpu_s'] / r['floor_s']['total']:9.1f}x" for r in ok))
    print(f"{'IR in the bundle (MB)':<26}" + "".join(f"{r['ir_bytes'] / 1e6:10.2f}" for r in ok))
    print(f"{'peak memory (MB, maxrss)':<26}" + "".join(f"{r['peak_mb']:10.0f}" for r in ok))
    print(f"{'spec size (KB)':<26}" + "".join(f"{r['spec_bytes'] / 1000:10.0f}" for r in ok))
    print(f"{'plan stages':<26}" + "".join(f"{r['stages']:>10,}" for r in ok))
    print(f"{'placement binaries':<26}" + "".join(f"{r.get('binaries', 0):>10,}" for r in ok))
    print(f"{'solver used':<26}" + "".join(f"{r['solver'] or '-':>10}" for r in ok))
    print(f"{'gap bound':<26}" + "".join(f"{(r.get('lower_bound') or '-')[:9]:>10}" for r in ok))
    biggest = ok[-1]
    dominant = max((k for k in biggest["timings_s"] if k != "passes"), key=biggest["timings_s"].get)
    print(f"\ndominant stage at {biggest['nodes']:,} nodes: {dominant} "
          f"({biggest['timings_s'][dominant]:.1f} s of {biggest['total_s']:.1f} s)")
    for n, limit in TARGETS_S.items():
        row = next((r for r in ok if r["nodes"] == n), None)
        if row:
            verdict = "met" if row["total_s"] < limit else "MISSED"
            print(f"target {n:,} nodes < {limit:.0f} s: {row['total_s']:.1f} s, {verdict}")
    for n, (limit, ratio) in TARGETS_CPU_S.items():
        row = next((r for r in ok if r["nodes"] == n), None)
        if row:
            got = row["total_cpu_s"] / row["floor_s"]["total"]
            print(f"target {n:,} nodes < {limit:.0f} s CPU: {row['total_cpu_s']:.1f} s, "
                  f"{'met' if row['total_cpu_s'] < limit else 'MISSED'}; within {ratio:.0f}x of xDSL's floor "
                  f"({row['floor_s']['total']:.2f} s for {row['ops']:,} ops): {got:.1f}x, "
                  f"{'met' if got < ratio else 'MISSED'}")
    for n, limit in TARGET_PEAK_MB.items():
        row = next((r for r in ok if r["nodes"] == n), None)
        if row:
            verdict = "met" if row["peak_mb"] < limit else "MISSED"
            print(f"target {n:,} nodes peak memory < {limit:.0f} MB: {row['peak_mb']:.0f} MB, {verdict}")


def auto_threshold() -> None:
    """The smallest synthetic graph whose placement problem exceeds AUTO_EXACT_MAX_BINARIES (bisection on the
    node count; problem size only, placement not solved beyond the probe)."""
    from hetc.compiler import CompileOptions, load
    from hetc.pipeline import PipelineRun
    from hetc.placement import AUTO_EXACT_MAX_BINARIES
    from hetc.spec.frontend import spec_to_module

    def binaries(n: int) -> int:
        stats: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "s.yaml"
            spec.write_text(synthetic_spec(n))
            _, loaded = load(str(spec), CompileOptions())
            module = spec_to_module(loaded)
            import hetc.placement as placement

            original = placement.solve

            class _Stop(Exception):
                pass

            def probe(problem, solver, **kwargs):
                stats["b"] = sum(len(op.candidates) for op in problem.ops)
                raise _Stop

            placement.solve = probe
            try:
                PipelineRun(spec="inline-agents,decompose-llm,decompose-tools,decompose-nodes,place").run(module)
            except _Stop:
                pass
            finally:
                placement.solve = original
        return stats["b"]

    lo, hi = 3, 1000
    while binaries(hi) <= AUTO_EXACT_MAX_BINARIES:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if binaries(mid) <= AUTO_EXACT_MAX_BINARIES else (lo, mid)
    print(f"--solver auto: exact up to {AUTO_EXACT_MAX_BINARIES:,} (op, candidate) binaries "
          f"(hetc/placement/solver.py AUTO_EXACT_MAX_BINARIES); the synthetic graph reaches it at {hi:,} nodes "
          f"({binaries(lo):,} binaries at {lo:,} nodes, {binaries(hi):,} at {hi:,}).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--solver", choices=["auto", "exact", "heuristic"], default="auto")
    parser.add_argument("--no-codegen", action="store_true", help="skip code generation")
    parser.add_argument("--no-forward-branches", action="store_true",
                        help="the synthetic graph's probability-0.5 input edges become plain edges (loops keep theirs)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median is shown")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON on stdout
    parser.add_argument("--write-spec", type=int, metavar="N", help="print the synthetic spec of N nodes")
    parser.add_argument("--auto-threshold", action="store_true", help="where --solver auto switches")
    parser.add_argument("--json", action="store_true", help="print the raw measurements as JSON too")
    args = parser.parse_args()
    if args.write_spec:
        sys.stdout.write(synthetic_spec(args.write_spec))
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args.solver, not args.no_codegen, not args.no_forward_branches)))
        return 0
    if args.auto_threshold:
        auto_threshold()
        return 0
    print(f"hetc compile scaling: solver={args.solver}, codegen={not args.no_codegen}, repeat={args.repeat}, "
          f"forward branches={not args.no_forward_branches}, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    rows = []
    for n in args.sizes:
        runs = [run_in_subprocess(n, args.solver, not args.no_codegen, not args.no_forward_branches)
                for _ in range(args.repeat)]
        good = [r for r in runs if "error" not in r]
        if not good:
            rows.append(runs[0])
            continue
        median = sorted(good, key=lambda r: r["total_s"])[len(good) // 2]
        for key in ("timings_s", "cpu_timings_s"):
            median[key] = {k: statistics.median(r[key].get(k, 0.0) for r in good) for k in median[key]}
        median["floor_s"] = {k: statistics.median(r["floor_s"][k] for r in good) for k in median["floor_s"]}
        rows.append(median)
        print(f"  {n:,} nodes: {median['total_s']:.2f} s ({median['total_cpu_s']:.2f} s CPU), peak "
              f"{median['peak_mb']:.0f} MB, solver {median['solver']}", flush=True)
    print()
    report(rows)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
