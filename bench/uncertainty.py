"""Samples per second of `hetc uncertainty` on the voice agent's pair study (target: 1,000 samples of the
36-pair study in under a minute on this machine).

    python bench/uncertainty.py                       # 1,000 samples, 3 runs, medians
    python bench/uncertainty.py --samples 5000 --runs 1 --pairs h100,b200,gaudi3

Per run: building the problem (decompose + candidates, once per study), then the study through the code
path every command shares (hetc.study.uncertainty.analysis.study: drawing and pricing the samples, every pair
re-solved in every sample through the vectorised fast path with the heuristic on the samples it cannot
decide, fixed plans, sensitivity, the tornado, the summary). The reference is what the study would cost
re-solving every (pair, sample) with the planner's heuristic (hetc.study.uncertainty.fast.solve_restricted): its
median time per solve on the nominal pairs, times pairs x samples. The whole command (`hetc uncertainty
... --json` in a new process: imports, problem, study, output) is timed too, run twice per seed, and its
two outputs compared byte for byte.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOICE = str(ROOT / "examples" / "voice-agent.yaml")
DEFAULT_PAIRS = "h100,b200,gaudi3,mi300x,h200,a100"
TARGET_S = 60.0


def one_run(samples: int, pairs: str, seed: int) -> dict[str, float]:
    from hetc.study.uncertainty.analysis import StudySettings, build, study

    t0 = time.perf_counter()
    db, spec, built, alternatives = build(VOICE, pairs)
    t1 = time.perf_counter()
    result = study(built, db, spec.hardware.pricing, alternatives, StudySettings(samples, seed))
    t2 = time.perf_counter()
    return {"build": t1 - t0, "study": t2 - t1, "total": t2 - t0, "alternatives": len(alternatives),
            "heuristic": result["resolves"]["heuristic"]}


def cli_run(samples: int, pairs: str, seed: int) -> tuple[float, bytes]:
    """(wall time, stdout) of the whole command in a fresh process (imports and output included)."""
    import subprocess
    import sys

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hetc.cli", "uncertainty", VOICE, "--pairs", pairs, "--samples",
                           str(samples), "--seed", str(seed), "--json"], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start, proc.stdout


def heuristic_solve_s(pairs: str) -> float:
    """Median wall time of one heuristic solve of a pair-restricted voice-agent problem."""
    from hetc.study.uncertainty.analysis import build
    from hetc.study.uncertainty.fast import solve_restricted

    _, _, built, alternatives = build(VOICE, pairs)
    times = []
    for _, allowed in alternatives:
        start = time.perf_counter()
        solve_restricted(built.problem, allowed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", default=DEFAULT_PAIRS)
    args = parser.parse_args()
    runs = [one_run(args.samples, args.pairs, args.seed + i) for i in range(args.runs)]
    median = {k: statistics.median(r[k] for r in runs) for k in ("build", "study", "total")}
    n_alt = runs[0]["alternatives"]
    per_solve = heuristic_solve_s(args.pairs)
    commands = [(cli_run(args.samples, args.pairs, args.seed + i), cli_run(args.samples, args.pairs, args.seed + i))
                for i in range(args.runs)]
    command = statistics.median(t for pair in commands for t, _ in pair)
    identical = all(first[1] == second[1] for first, second in commands)
    reference = per_solve * n_alt * args.samples
    print(f"voice agent, {n_alt} pairs ({args.pairs}), {args.samples} samples, median of {args.runs} run(s)")
    print(f"  build problem     {median['build']:8.2f} s")
    print(f"  study             {median['study']:8.2f} s   (draw, price, re-solve, tornado; heuristic re-solves: "
          f"{', '.join(str(r['heuristic']) for r in runs)} of {n_alt * args.samples} per run)")
    print(f"  total             {median['total']:8.2f} s   target < {TARGET_S:.0f} s: "
          f"{'met' if median['total'] < TARGET_S else 'MISSED'}")
    print(f"  hetc uncertainty  {command:8.2f} s   (the whole command in a new process, --json); "
          f"same seed twice byte-identical: {'yes' if identical else 'NO'}")
    print(f"  samples/s         {args.samples / median['total']:8.1f}       "
          f"(pair-samples/s {args.samples * n_alt / median['total']:.0f})")
    print(f"  reference: heuristic per (pair, sample): {per_solve * 1e3:.1f} ms median per solve -> "
          f"{reference:.0f} s for the study ({reference / median['total']:.0f}x the fast path)")


if __name__ == "__main__":
    main()
