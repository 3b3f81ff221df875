"""A long hostile-IR fuzz of `hetc opt` (issue 12): tests/test_fuzz_ir.py with many fresh examples.

    python bench/fuzz_opt.py [--examples 2000]

Prints the number of examples run and pytest's verdict; any exit code 1 (internal error) or hang fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    env = {**os.environ, "HETC_FUZZ_IR_EXAMPLES": str(args.examples)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                             str(ROOT / "tests" / "test_fuzz_ir.py")], env=env, cwd=ROOT)
    print(f"hostile-IR fuzz: {args.examples} examples in {time.perf_counter() - start:.0f} s: "
          f"{'no exit 1, no hang' if result.returncode == 0 else 'FAILED (see above)'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
