"""A long fuzzing run: the properties of tests/test_fuzz.py with many more examples, random seeds.

    python bench/fuzz_long.py                 # scale 50: ~5,000 valid and ~12,000 invalid specs
    python bench/fuzz_long.py --scale 5 -x    # a quicker pass that stops at the first failure
    python bench/fuzz_long.py --seed 1234     # reproducible run

CI runs the same properties derandomized at scale 1 (a few hundred examples, under a minute). Here every
run draws new examples (HETC_FUZZ_RANDOM=1) unless --seed is given. Failures are shrunk unless --no-shrink,
and hypothesis prints the failing spec as YAML.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=50.0, help="multiplier of the CI example counts")
    parser.add_argument("--seed", type=int, help="hypothesis seed (default: random)")
    parser.add_argument("--no-shrink", action="store_true", help="report failures unshrunk (faster)")
    parser.add_argument("-x", action="store_true", help="stop at the first failing property")
    parser.add_argument("-k", default="", help="pytest -k expression to select properties")
    args = parser.parse_args()

    env = dict(os.environ, HETC_FUZZ_SCALE=str(args.scale), HETC_FUZZ_RANDOM="1")
    if args.no_shrink:
        env["HETC_FUZZ_SHRINK"] = "0"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_fuzz.py"), "-q", "-p", "no:cacheprovider",
           "--hypothesis-show-statistics"]
    if args.seed is not None:
        cmd.append(f"--hypothesis-seed={args.seed}")
    if args.x:
        cmd.append("-x")
    if args.k:
        cmd += ["-k", args.k]
    print("+", " ".join(cmd), f"(HETC_FUZZ_SCALE={args.scale})", flush=True)
    start = time.perf_counter()
    code = subprocess.call(cmd, env=env, cwd=ROOT)
    print(f"fuzz_long: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
