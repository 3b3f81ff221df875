"""Re-planning from observed load: observations -> updated spec -> new plan -> migration.

Stability rules (docs/replan.md):
- hysteresis: observed values within `band_pct` percent of the spec's are no change; nothing is re-planned;
- the current plan's device classes are preferred: the spec is compiled twice, once free and once with its
  pool restricted to the classes the current plan uses ("sticky"); the free plan wins only when it saves at
  least `min_saving_pct` percent of the sticky plan's $/hour (ties keep the current classes);
- a stage that moves costs MIGRATION_HOURS of double capacity (hetc/study/migration.py); the report states it and
  the hours the saving takes to pay it back.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hetc.compiler import SPEC_IN_BUNDLE
from hetc.errors import HetcError, InfeasibleError, Loc
from hetc.spec.update import Change, apply_changes, observed_changes, significant
from hetc.study.migration import migrate
from hetc.study.observations import Observations
from hetc.yaml_text import to_yaml


@dataclass
class Replan:
    changes: list[Change]  # every observed value
    significant: list[Change]  # outside the band
    result: Any = None  # CompileResult of the chosen plan (None: no change)
    choice: str = ""  # "free" or "sticky"
    free_usd: float | None = None
    sticky_usd: float | None = None
    migration: dict[str, Any] = field(default_factory=dict)


def bundle_spec(bundle: Path, plan: dict[str, Any], spec_path: str | None) -> tuple[str, bytes]:
    """The spec text the bundle was compiled from: `--spec`, or the copy a replanned bundle keeps; its sha256
    must match the plan's provenance."""
    from hetc.userfiles import UnreadableFile, read_input

    if spec_path is None:
        kept = bundle / SPEC_IN_BUNDLE
        if not kept.is_file():
            raise HetcError("this bundle does not keep its spec (a spec that includes agent files is not kept, nor "
                            "by earlier hetc versions): give --spec SPEC, the spec it was compiled from", Loc(str(bundle)))
        spec_path = str(kept)
    try:
        shown, data = read_input(spec_path, 16 << 20, "specs")
    except UnreadableFile as exc:
        raise HetcError(f"cannot read the spec: {exc}", Loc(str(spec_path))) from None
    want = plan["provenance"].get("spec_sha256")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise HetcError(f"this spec is not the one the bundle was compiled from (sha256 differs from "
                        f"{bundle}/plan.json provenance.spec_sha256)", Loc(shown))
    return shown, data


def replan(spec_shown: str, spec_data: bytes, plan: dict[str, Any], obs: Observations, *, band_pct: float,
           min_saving_pct: float, simulate_s: float = 10.0) -> Replan:
    from hetc.compiler import CompileOptions, load

    options = CompileOptions(hwdb=plan["provenance"].get("hwdb", "default"))
    _, spec = load(spec_shown, options)
    if spec.included_sha256:
        raise HetcError("replan updates one spec file; this spec includes agent files (`file:`), which it does not "
                        "update yet", Loc(spec_shown))
    changes = observed_changes(spec, plan, obs)
    outside = significant(changes, band_pct)
    out = Replan(changes, outside)
    if not outside:
        return out
    doc = apply_changes(yaml.safe_load(spec_data), outside, spec_shown)
    free = _compile(doc, spec_shown, options)
    sticky = _compile(_sticky(doc, plan), spec_shown, options, may_fail=True)
    out.free_usd = free.plan["tco"]["usd_per_hour"]
    out.sticky_usd = sticky.plan["tco"]["usd_per_hour"] if sticky else None
    saving_pct = 0.0 if not sticky else (out.sticky_usd - out.free_usd) / out.sticky_usd * 100.0
    out.choice = "free" if sticky is None or saving_pct >= max(min_saving_pct, 1e-9) else "sticky"
    out.result = free if out.choice == "free" else sticky
    need = out.result.plan["traffic"]["requests_per_s"]
    out.migration = migrate(plan, out.result.plan, need)
    out.migration["simulated"] = simulated(out.result.plan, need, simulate_s)
    out.migration["choice"] = {"picked": out.choice, "free_usd_per_hour": out.free_usd,
                               "sticky_usd_per_hour": out.sticky_usd, "min_saving_pct": min_saving_pct,
                               "saving_pct": round(saving_pct, 3)}
    return out


def simulated(plan: dict[str, Any], rate: float, seconds: float) -> dict[str, Any] | None:
    """The new plan simulated at the observed rate (hetc.study.simulate, in-process, seed 0): the check a reviewer
    would run by hand. None when `seconds` is 0."""
    from hetc.study.simulate import simulate

    if seconds <= 0 or not rate:
        return None
    report = simulate(plan, rate_rps=rate, duration_s=seconds, seed=0)
    return {"rate_rps": rate, "duration_s": seconds, "requests": report["requests"], "meets_sla": report["meets_sla"],
            "dropped": report["dropped"]["count"],
            "failed": [f"{c['metric']} {c['percentile']} {c['measured_ms']:g} ms > {c['target_ms']:g} ms"
                       for c in report["checks"] if not c["meets"]]}


def _sticky(doc: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The spec with its pool cut to the device classes the current plan uses."""
    classes = sorted({s["device"] for s in plan["stages"] if s.get("device")})
    hardware = dict(doc.get("hardware") or {})
    hardware["pool"] = classes
    inventory = hardware.get("inventory") or {}
    if inventory:
        hardware["inventory"] = {k: v for k, v in inventory.items() if k in classes}
    return {**doc, "hardware": hardware}


def _compile(doc: dict[str, Any], spec_shown: str, options, may_fail: bool = False):
    """Compile a spec document under the original spec's file name (the bundle records the base name); the
    bundle keeps the spec text it was compiled from."""
    from hetc.compiler import compile_spec

    text = ("# written by hetc replan: the spec updated from observed load\n" + to_yaml(doc)).encode()
    with tempfile.TemporaryDirectory(prefix="hetc-replan-") as tmp:
        path = os.path.join(tmp, os.path.basename(spec_shown) or "spec.yaml")
        Path(path).write_bytes(text)
        try:
            result = compile_spec(path, options)
        except InfeasibleError:
            if may_fail:
                return None
            raise
    if result.plan is None:
        raise HetcError("the re-planned spec produced no plan", Loc(spec_shown))
    return result
