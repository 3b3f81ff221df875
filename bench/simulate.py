"""Benchmark: simulate 100,000 requests of the voice-agent sample plan and report wall time.

Target (issue 6): under 60 s on the 2-core development machine.
Usage: python bench/simulate.py [--requests N] [--rate R] [--seed S] [--plan PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hetc.bundle.schema import load_plan
from hetc.study.simulate import simulate

DEFAULT_PLAN = Path(__file__).resolve().parent.parent / "tests" / "data" / "plans" / "voice_agent.json"
TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=None, help="req/s (default: the plan's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    plan = load_plan(args.plan)
    rate = args.rate or plan["traffic"]["requests_per_s"]
    duration_s = args.requests / rate
    start = time.perf_counter()
    report = simulate(plan, rate_rps=rate, duration_s=duration_s, seed=args.seed)
    wall_s = time.perf_counter() - start
    print(f"plan {report['plan']}: {report['requests']} requests at {rate} req/s over {duration_s:.0f} s simulated")
    print(f"events {report['events']}, wall {wall_s:.2f} s, {report['events'] / wall_s / 1e3:.0f} k events/s, "
          f"{report['requests'] / wall_s / 1e3:.1f} k requests/s")
    print(f"p99 latency {report['latency_ms']['p99']} ms, p99 TTFT {report['ttft_ms']['p99']} ms, "
          f"p99 TBT {report['tbt_ms']['p99']} ms, attainment {report['sla_attainment']:.4f}, "
          f"meets SLA {report['meets_sla']}")
    print(f"target {TARGET_S:.0f} s: {'PASS' if wall_s < TARGET_S else 'FAIL'}")


if __name__ == "__main__":
    main()
