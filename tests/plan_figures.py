"""The figures a plan decides (hardware, replicas, cost to the cent) for every example, as a golden record.

Refactors must not move them: tests/test_plan_figures.py compares each example's fresh plan with
tests/data/plan-figures/<example>.json. A change that is meant to move them (a cost-model change, a
correctness fix) rewrites the record with `python tests/plan_figures.py --write` and says why in its commit.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + [ROOT / "examples/cpu-helpdesk/agent.yaml"]
RECORDS = ROOT / "tests/data/plan-figures"


def cents(usd: float) -> float:
    return round(usd, 2)


def figures(plan: dict) -> dict:
    """What a plan decides, rounded where a float's last bits carry no decision."""
    return {
        "pd": plan["pd"],
        "usd_per_hour": cents(plan["tco"]["usd_per_hour"]),
        "devices": {d["device"]: d["count"] for d in plan["devices"]},
        "stages": {
            s["id"]: {"device": s["device"], "replicas": s["replicas"], "batch": s["batch"], "tp": s["tp"],
                      "usd_per_hour": cents(s["tco"]["usd_per_hour"])}
            for s in plan["stages"] if s["device"]
        },
        "baselines": {b["device"]: cents(b["usd_per_hour"]) if b["feasible"] else None
                      for b in plan["baselines"]},
    }


def record_name(spec: Path) -> str:
    return spec.relative_to(ROOT / "examples").with_suffix("").as_posix().replace("/", "--")


def compile_figures(spec: Path, out_dir: Path) -> dict:
    from hetc.cli import main

    try:
        main(["compile", str(spec), "-o", str(out_dir), "-q"])
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"hetc compile {spec} exited {exc.code}") from exc
    return figures(json.loads((out_dir / "plan.json").read_text()))


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    RECORDS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in EXAMPLES:
            got = compile_figures(spec, Path(tmp) / record_name(spec))
            (RECORDS / f"{record_name(spec)}.json").write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
            print(f"wrote {record_name(spec)}: ${got['usd_per_hour']}/h on {got['pd']}")
