"""Turn audited MLPerf Inference results into cost-model measurement records (hetc/data/measured-mlperf.yaml).

    python bench/mlperf_records.py SOURCE.yaml -o hetc/data/measured-mlperf.yaml

SOURCE is a collection of MLPerf Inference datacenter closed-division results (one record per system,
scenario and benchmark, with its mlperf_log_summary.txt URL). Kept: Llama 2 70B (OpenOrca) Offline and
Server results on one device class hetc's database knows, in a stated precision, from one node. Each
becomes one record of output tokens/s per device (the system's figure / its accelerator count):

- Offline: unconstrained throughput, `batch: max` (the engine's largest batch that fits memory).
- Server: throughput under p99 TTFT and TPOT limits: `batch: max` under `tbt_limit_ms` (the TPOT limit).
  The TTFT limit and Poisson arrivals (queueing) are not modelled: Server figures are expected below the
  prediction, and the bench reports them as their own rows.

Sequence lengths vary per sample; the logs give none. Output: ~294 tokens per sample (what the submitters'
accuracy logs report, 265-324 allowed). Input: 300 tokens, an estimate (OpenOrca prompts are capped at
1,024 tokens; most are short questions with a system prompt). tp: `best` = the tensor-parallel degree that
gives the most tokens/s per device (what a submitter tunes for; the logs do not say).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

# MLPerf system descriptions name devices in many ways; the first pattern that matches wins.
DEVICES = (
    (r"MI325X", "amd-mi325x"), (r"MI300X", "amd-mi300x"), (r"GB200", "nvidia-gb200"), (r"B200", "nvidia-b200"),
    (r"H200-SXM", "nvidia-h200"), (r"H100-SXM", "nvidia-h100-sxm"), (r"H100-PCIe", "nvidia-h100-pcie"),
    (r"L40S", "nvidia-l40s"), (r"Gaudi 2", "intel-gaudi2"),
)
SKIP_DEVICE = re.compile(r"\(x\d+\)|NVL|GH200|GB300|Virtualized|CTS")  # mixed systems, devices hwdb lacks
OUTPUT_TOKENS = 294
INPUT_TOKENS = 300
TPOT_LIMIT = re.compile(r"p99 TPOT <= (\d+) ms")


def _device(name: str) -> str | None:
    if SKIP_DEVICE.search(name):
        return None
    return next((dev for pattern, dev in DEVICES if re.search(pattern, name)), None)


def _precision(device: str, text: str) -> tuple[str, str] | None:
    """(weights, KV cache) precision, or None when the submission leaves it unclear."""
    text = text.lower()
    if "not stated" in text or text.startswith("fp16"):
        return None
    if device in ("nvidia-b200", "nvidia-gb200"):
        return ("fp4", "fp8") if "fp4" in text else None  # NVFP4 checkpoints keep KV in FP8
    return ("fp8", "fp8") if "fp8" in text else None


def _engine(text: str) -> str:
    """TensorRT-LLM, the Gaudi stack, or vLLM. MLPerf harnesses return token ids (no detokenisation) and
    AMD's add their own scheduling, so their vLLM builds map to the vllm profile whatever the version."""
    if "TensorRT" in text:
        return "trtllm"
    if "SynapseAI" in text:
        return "vllm-gaudi"
    return "vllm"


def convert(source: dict) -> list[dict]:
    records = []
    for raw in source["records"]:
        if raw.get("model") != "Llama-2-70B-chat":
            continue
        scenario = str(raw["scenario"]).split(" ")[0]
        device = _device(str(raw["device"]))
        if scenario not in ("Offline", "Server") or device is None:
            continue
        precision = _precision(device, str(raw["precision"]))
        if precision is None or not raw.get("n_devices"):
            continue
        record = {
            "id": raw["id"], "model": "llama-2-70b", "device": device, "precision": precision[0],
            "kv_precision": precision[1], "tp": "best", "batch": "max", "input_tokens": INPUT_TOKENS,
            "output_tokens": OUTPUT_TOKENS, "metric": "output_tokens_per_s_per_device",
            "value": round(float(raw["value"]) / int(raw["n_devices"]), 1),
            "source": raw["source_url"], "engine": _engine(str(raw["engine"])), "split": "validate",
            "scenario": scenario.lower(),
            "note": f"{raw['round']}, {raw['submitter']}, {raw['n_devices']} devices, {raw['engine']}; "
                    f"system {raw['value']} tok/s",
        }
        if scenario == "Server":
            limit = TPOT_LIMIT.search(str(raw.get("constraints") or ""))
            if not limit:
                continue
            record["tbt_limit_ms"] = int(limit.group(1))
        records.append(record)
    return records


HEADER = """\
# Audited MLPerf Inference results (datacenter, closed division) as cost-model measurement records.
# Written by bench/mlperf_records.py from a collection of MLPerf Inference v4.0-v5.1 results; every
# record's `source` is its mlperf_log_summary.txt in the MLCommons results repositories.
# Llama 2 70B on OpenOrca, Offline and Server scenarios, single node, one device class in hetc's database.
# value: output tokens/s per device (system figure / accelerators). Sequence lengths vary per sample:
# output ~294 tokens (submitters' accuracy logs), input 300 tokens (estimate: not in the logs).
# tp: best = the tensor-parallel degree with the most tokens/s per device (not in the logs).
# Server records: throughput under the p99 TPOT limit (tbt_limit_ms); the TTFT limit and queueing are
# not modelled. split: validate (held-out checks; bench/costmodel_accuracy.py --mlperf).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    source = yaml.safe_load(Path(args.source).read_text())
    measured = yaml.safe_load((Path(__file__).resolve().parent.parent / "hetc" / "data" / "measured-llm.yaml")
                              .read_text())
    models = {"llama-2-70b": measured["models"]["llama-2-70b"]}
    records = convert(source)
    Path(args.output).write_text(HEADER + yaml.safe_dump({"models": models, "records": records}, sort_keys=False,
                                                         width=120))
    print(f"{len(records)} records written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
