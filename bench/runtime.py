"""Measured latency of the CPU stages under `hetc serve` beside the plan's prediction.

    python bench/runtime.py                 # 30 requests to `hetc serve --local`
    python bench/runtime.py --requests 100 --ray

Compiles the CPU help-desk example (examples/cpu-helpdesk), starts its search tool and the tests' LLM
stand-in on 127.0.0.1, runs `hetc serve BUNDLE --bind FILE` (in-process with --local, or on a local Ray
instance with --ray) and sends requests one at a time with `"stream": true`: each `stage` event carries the
stage's wall time seen by the router. Prints, per CPU stage, the median and p90 of the measured times, the
plan's `predicted.latency_ms` and the ratio. The LLM stages are not measured here (the stand-in has no model).
A last row times the embed stage's pooling kernel as the runtime calls it (hetc.runtime.kernels.EmbedPool, from
an emitted object file) against numpy's masked mean + L2 norm on the same batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from stand_ins.helpdesk import compile_example, start_tool_server, write_bindings  # noqa: E402
from stand_ins.openai_llm import StandInLLM  # noqa: E402

QUESTIONS = ("How do I reset my password?", "my VPN keeps disconnecting", "hello", "where is my invoice",
             "tell me everything about e-mail quotas")


def wait_listening(process: subprocess.Popen, timeout_s: float = 180) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("listening on "):
            return line.split()[2].removesuffix("/v1/agent")
        if process.poll() is not None:
            raise SystemExit(f"hetc serve exited with {process.returncode}")
    raise SystemExit("hetc serve did not start in time")


def stage_times(url: str, text: str) -> dict[str, float]:
    times: dict[str, float] = {}
    with requests.post(f"{url}/v1/agent", json={"input": text, "stream": True}, stream=True, timeout=120) as reply:
        event = ""
        for line in reply.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "stage":
                data = json.loads(line[6:])
                times[data["stage"]] = times.get(data["stage"], 0.0) + data["ms"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--ray", action="store_true", help="run on a local Ray instance instead of --local")
    parser.add_argument("--port", type=int, default=8765)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, StandInLLM() as llm:
        bundle = compile_example(Path(tmp) / "bundle")
        plan = json.loads((bundle / "plan.json").read_text())
        tool = start_tool_server()
        bindings = write_bindings(Path(tmp) / "bind.yaml", llm.url, tool.server_address[1])
        command = ["hetc", "serve", str(bundle), "--bind", str(bindings), "--port", str(options.port)]
        command += ["--num-cpus", "2"] if options.ray else ["--local"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = wait_listening(process)
            for text in QUESTIONS:  # warm-up: imports, kernel linking, connections
                stage_times(url, text)
            samples: dict[str, list[float]] = {}
            for i in range(options.requests):
                for stage, ms in stage_times(url, QUESTIONS[i % len(QUESTIONS)]).items():
                    samples.setdefault(stage, []).append(ms)
        finally:
            process.terminate()
            process.wait(timeout=60)
            tool.shutdown()
    mode = "Ray Serve" if options.ray else "--local"
    print(f"hetc serve {mode}, {options.requests} requests (one at a time), CPU help-desk example")
    print(f"{'stage':<18}{'kind':<14}{'reqs':>6}{'median ms':>11}{'p90 ms':>9}{'predicted ms':>14}{'ratio':>8}")
    for stage in plan["stages"]:
        if stage["device_kind"] != "cpu" or stage["kind"] in ("prefill", "decode") or stage["id"] not in samples:
            continue
        times = sorted(samples[stage["id"]])
        median, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
        predicted = stage["predicted"]["latency_ms"]
        print(f"{stage['id']:<18}{stage['kind']:<14}{len(times):>6}{median:>11.2f}{p90:>9.2f}{predicted:>14.2f}"
              f"{median / predicted:>8.2f}")
    pooling_row()


def pooling_row(batch: int = 8, seq: int = 64, dim: int = 1024, runs: int = 21) -> None:
    """Median time of the runtime's pooling kernel vs numpy, bge-large's width, a batch padded to 64 tokens."""
    import numpy as np

    from hetc.model.models import PRESETS
    from hetc.runtime.kernels import CPU_DIR, EmbedPool
    from hetc.targets import get_target
    from hetc.targets.kernels import embed_kernels

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / CPU_DIR
        folder.mkdir(parents=True)
        for name, data in get_target("cpu").emit(embed_kernels("bench", PRESETS["bge-large-en-v1.5"], {}),
                                                 "x86-64").items():
            (folder / name).write_bytes(data)
        pool = EmbedPool(Path(tmp), dim=dim)
        rng = np.random.default_rng(0)
        hidden = rng.standard_normal((batch, seq, dim)).astype(np.float32)
        mask = (np.arange(seq)[None, :] < rng.integers(1, seq + 1, batch)[:, None]).astype(np.int32)

        def numpy_pool():
            m = mask[:, :, None].astype(np.float32)
            mean = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
            return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)

        np.testing.assert_allclose(pool.pool(hidden, mask), numpy_pool(), rtol=1e-5, atol=1e-6)
        kernel_ms, numpy_ms = (statistics.median(_time_ms(fn) for _ in range(runs))
                               for fn in (lambda: pool.pool(hidden, mask), numpy_pool))
    print(f"embed pooling {batch}x{seq}x{dim} (EmbedPool, as the embed stage calls it): kernel {kernel_ms:.3f} ms, "
          f"numpy {numpy_ms:.3f} ms, ratio {numpy_ms / kernel_ms:.2f}x (median of {runs})")


def _time_ms(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
