"""Start-up time of the `hetc` command: `hetc --version` and `hetc --help`, median of 10 runs each.

    python bench/startup.py            # 10 runs per command
    python bench/startup.py --runs 30

Target (issue 8): under 0.3 s each. hetc/cli/__init__.py imports subcommands lazily, so neither command may load
xDSL, llvmlite, scipy or highspy; the script also checks that with `python -X importtime`, which lists
every module imported, and prints the slowest imports.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_S = 0.3
HEAVY = ("xdsl", "llvmlite", "scipy", "highspy", "numpy", "jinja2")


def wall_times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")
    return times


def imported_modules(args: list[str]) -> list[tuple[int, str]]:
    """(cumulative microseconds, top-level module) from -X importtime, slowest first."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           f"import sys; sys.argv = ['hetc', *{args!r}]; from hetc.cli import main; main()"],
                          capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        rows.append((int(cumulative_us), name))
    return sorted(rows, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    entry = shutil.which("hetc")
    commands = {
        "hetc --version": [entry, "--version"] if entry else [sys.executable, "-m", "hetc.cli", "--version"],
        "hetc --help": [entry, "--help"] if entry else [sys.executable, "-m", "hetc.cli", "--help"],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
    }
    status = 0
    print(f"median of {args.runs} runs ({'console script ' + entry if entry else 'python -m hetc.cli'})")
    for label, cmd in commands.items():
        times = wall_times(cmd, args.runs)
        median = statistics.median(times)
        verdict = "" if label.startswith("python") else ("  target < 0.3 s: met" if median < TARGET_S
                                                          else "  target < 0.3 s: MISSED")
        status |= bool(verdict.endswith("MISSED"))
        print(f"  {label:<24} median {median * 1000:6.0f} ms  (min {min(times) * 1000:.0f}, "
              f"max {max(times) * 1000:.0f}){verdict}")
    for flag in ("--version", "--help"):
        rows = imported_modules([flag])
        heavy = sorted({name.split(".")[0] for _, name in rows if name.split(".")[0] in HEAVY})
        print(f"  hetc {flag}: {len(rows)} modules imported; heavy ones: {', '.join(heavy) or 'none'}")
        status |= bool(heavy)
        slowest = [f"{name} {us / 1000:.0f} ms" for us, name in rows if "." not in name][:5]
        print(f"    slowest top-level imports: {', '.join(slowest)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
