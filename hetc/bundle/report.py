"""report.html: what a person reads about a plan (and a sweep), as one self-contained page.

No script, no external resource: inline CSS and inline SVG only, and a Content-Security-Policy that forbids
loading anything, so the page renders the same offline and a stray reference would fail loudly (the browser
logs a CSP violation; tests/test_report.py checks there is none). Every string that comes from the user
(spec names, node ids, device ids, reasons) goes through `_esc`. Output is deterministic: no timestamps,
coordinates rounded to 0.1 px, colours assigned to device classes in sorted order.

The page holds the cards, the tables and the charts of hetc.bundle.charts (chart-plan, chart-tco,
chart-baselines, chart-pareto, chart-sla, and chart-pd for a pair sweep); with a study under uncertainty,
chart-uncertainty and chart-tornado (hetc.study.uncertainty.charts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hetc.bundle.charts import (
    COMPONENT_COLOURS,
    baselines_svg,
    components,
    device_colours,
    pareto_svg,
    pd_svg,
    plan_graph_svg,
    sla_svg,
    tco_svg,
)
from hetc.bundle.svg import _clip, _esc, _ms, _ratio, _usd

COMPONENT_NOTES = {"capital": "capital (annuity on the purchase price; none for sunk devices)", "power": "power",
                   "overhead": "overhead (yearly share of the purchase price)", "cloud": "cloud rental"}

CSP = "default-src 'none'; style-src 'unsafe-inline'"
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:4px 0 8px}
.sub{color:#57606a;margin:0 0 16px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;margin:16px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#57606a;font-size:12px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #eaeef2;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td.l,th.l{text-align:left}
.ok{color:#1a7f37}.bad{color:#cf222e}
svg{display:block;max-width:100%;height:auto}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12px;margin:6px 0}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:4px}
.note{color:#57606a;font-size:12px}
"""



def _legend(colours: dict[str, str]) -> str:
    items = "".join(f'<span><i class="sw" style="background:{c}"></i>{_esc(d)}</span>' for d, c in colours.items())
    return f'<div class="legend">{items}</div>'


def _stage_devices(plan: dict) -> list[str]:
    return [s["device"] for s in plan.get("stages", []) if s.get("device")]

# ---------------------------------------------------------------------------------------------- tables


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], left_cols: int = 1, table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f'<th class="{"l" if i < left_cols else ""}">{_esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left_cols else ""}">{_esc(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _stage_table(plan: dict) -> str:
    rows = []
    for s in plan["stages"]:
        if not s.get("device"):
            continue
        rows.append([s["id"], s["kind"], s["device"], f"{s['replicas']} x {s['tp']}" + (f" x pp{s['pp']}" if s["pp"] > 1 else ""),
                     str(s["batch"]), _ms(s["predicted"]["latency_ms"]),
                     f"{s['invocations']['expected']:.2f} / {s['invocations']['worst']:g}",
                     *[_usd(value) for _, _, value in components(plan, s["tco"])], _usd(s["tco"]["usd_per_hour"])])
    names = [f"{label} $/h" for _, label, _ in components(plan, plan["tco"])]
    return _table(["stage", "kind", "device", "replicas x tp", "batch", "latency", "calls expected / worst",
                   *names, "$/h"], rows, 3, "table-stages")


def _phase_table(plan: dict) -> str:
    slo = plan["slo"]
    rows = []
    for s in plan["stages"]:
        for metric, limit_key, name in (("ttft_ms", "ttft_ms", "TTFT"), ("tbt_ms", "tbt_ms", "TBT")):
            value = s.get("predicted", {}).get(metric)
            if value is None:
                continue
            limit = slo.get(limit_key)
            slack = "-" if limit is None else f"{limit - value:,.1f} ms"
            ok = limit is None or value <= limit + 1e-9
            rows.append([s["id"], name, _ms(value), _ms(limit), slack, "meets" if ok else "misses"])
    if not rows:
        return ""
    return _table(["stage", "limit", "predicted", "SLA", "slack", ""], rows, 2, "table-phases")


def _status(row: dict) -> str:
    """A pair row's status, with the reason when the pair has no KV path at the sweep's level."""
    if row["status"] == "ok" or "KV cache" not in (row.get("reason") or ""):
        return row["status"]
    return f"{row['status']}: no {row.get('kv_level', '')} KV path".replace("  ", " ")


def _kv_path_text(row: dict) -> str:
    """The pair's KV path status and id (sweep rows from hetc.model.kvpaths.pair_status)."""
    status, path = row.get("kv_path_status"), row.get("kv_path")
    if not status:
        return "-"
    return f"{status} ({path})" if path and status != "same class" else status


def _sweep_table(rows: Sequence[dict]) -> str:
    keys = sorted({k for r in rows for k in r.get("params", {})})
    if any("pair" in r for r in rows):
        headers = keys + ["P::D", "status", "benefit", "LLM $/h", "total $/h", "prefill", "decode", "TTFT", "TBT",
                          "KV path", "needs --kv-paths"]
        body = [[r.get("params", {}).get(k, "") for k in keys]
                + [("hetc: " if r.get("choice") == "hetc" else "") + r["pair"], _status(r), _ratio(r.get("benefit")),
                   _usd(r.get("llm_usd_per_hour")), _usd(r.get("usd_per_hour")), r.get("prefill") or "-",
                   r.get("decode") or "-", _ms(r.get("ttft_ms")), _ms(r.get("tbt_ms")), _kv_path_text(r),
                   r.get("kv_level_needed") or "-"] for r in rows]
        return _table(headers, body, len(keys) + 2, "table-sweep")
    headers = keys + ["status", "$/h", "$/1M req", "critical path", "slack", "P::D", "devices"]
    body = [[r.get("params", {}).get(k, "") for k in keys]
            + [r["status"] if r["status"] == "ok" else f"{r['status']}: {_clip(r.get('reason') or '', 80)}",
               _usd(r.get("usd_per_hour")), _usd(r.get("usd_per_1m_requests")), _ms(r.get("critical_path_ms")),
               _ms(r.get("slack_ms")), r.get("pd") or "-", r.get("devices") or "-"] for r in rows]
    return _table(headers, body, len(keys) + 1, "table-sweep")


# ------------------------------------------------------------------------------------------------ page


def render_report(plan: dict, sweep: list[dict] | None = None, uncertainty: dict | None = None) -> str:
    """The report page for a plan.json dict, and for the rows of a sweep (hetc.study.sweep) when given; with a study
    under uncertainty (`uncertainty`, else the plan's own "uncertainty"), its verdict, bands and tornado."""
    stage_devices = set(_stage_devices(plan))
    colours = device_colours(
        list(stage_devices) + [b["device"] for b in plan.get("baselines", [])]
        + [d for r in sweep or [] for d in (r.get("prefill_device"), r.get("decode_device")) if d and d != "-"])
    tco = plan["tco"]
    slo = plan["slo"]
    paths = plan.get("paths") or []
    worst = max(paths, key=lambda p: p["latency_ms"]) if paths else None
    cards = [(_usd(tco["usd_per_hour"]), "TCO per hour"),
             (_usd(tco.get("usd_per_1m_requests")), "per 1M requests"),
             (_usd(tco.get("usd_per_1m_tokens")), "per 1M output tokens"),
             (_ms(worst["latency_ms"]) if worst else "-", f"critical path (limit {_ms(slo.get('latency_ms'))})"),
             (plan.get("pd") or "-", "P::D (prefill :: decode)")]
    prov = plan.get("provenance", {})
    traffic = plan.get("traffic", {})
    load = (f"{traffic['requests_per_s']:g} requests/s" if traffic.get("requests_per_s") is not None
            else f"offline ({traffic.get('objective') or '-'}), sized for {traffic.get('rate_basis') or 'an unstated rate'}")
    targets = slo.get("latency_percentiles_ms") or (
        {slo.get("percentile") or "p99": slo["latency_ms"]} if slo.get("latency_ms") is not None else {})
    sla_bits = [f"{name} {value:g} ms" for name, value in sorted(targets.items())]
    sla_bits += [f"{name} {slo[key]:g} ms" for key, name in (("ttft_ms", "TTFT"), ("tbt_ms", "TBT"))
                 if slo.get(key) is not None]
    sub = (f"{load}; SLA {', '.join(sla_bits) or 'none'}; hardware database {prov.get('hwdb', '-')}; "
           f"solver {prov.get('solver', '-')}; hetc {prov.get('hetc_version', '-')}")
    body = [f"<h1>{_esc(plan['name'])}</h1><p class=\"sub\">{_esc(sub)}</p>",
            '<div class="cards">' + "".join(f'<div class="card"><b>{_esc(v)}</b><span>{_esc(k)}</span></div>'
                                            for v, k in cards) + "</div>",
            "<section><h2>Plan</h2>" + _legend({d: c for d, c in colours.items() if d in stage_devices})
            + plan_graph_svg(plan, colours) + _stage_table(plan) + "</section>",
            "<section><h2>TCO per stage: " + ", ".join(label for _, label, _ in components(plan, tco)) + "</h2>"
            + _legend({COMPONENT_NOTES[name]: COMPONENT_COLOURS[name] for name, _, _ in components(plan, tco)})
            + tco_svg(plan) + f'<p class="note">{_esc(_tco_note(plan))}</p></section>',
            "<section><h2>Homogeneous baselines</h2><p class=\"note\">Every accelerator op on one device class "
            "(CPU-only ops stay on CPUs), each solved for minimum TCO under the same SLA.</p>"
            + baselines_svg(plan, colours) + "</section>",
            "<section><h2>Cost vs latency</h2>" + pareto_svg(plan, sweep) + "</section>",
            "<section><h2>SLA per path</h2>" + sla_svg(plan, colours) + _phase_table(plan) + "</section>"]
    if sweep:
        if any("pair" in r for r in sweep):
            body.append("<section><h2>P::D pairs: TCO benefit</h2><p class=\"note\">Benefit = the baseline pair's "
                        "LLM $/hour divided by the pair's, at the same request rate and SLA (higher is cheaper). "
                        "Squares: prefill and decode device.</p>" + pd_svg(sweep, colours) + "</section>")
        body.append("<section><h2>Sweep</h2>" + _sweep_table(sweep) + "</section>")
    study = uncertainty or plan.get("uncertainty")
    if study:
        from hetc.study.uncertainty.charts import uncertainty_section

        body.insert(2, uncertainty_section(study))  # after the cards: the verdict is what a buyer reads first
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>hetc report: {_esc(plan['name'])}</title><style>{STYLE}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def _tco_note(plan: dict) -> str:
    owned = [d for d in plan.get("devices", []) if d.get("owned")]
    parts = ", ".join(f"{label} {_usd(value)}" for _, label, value in components(plan, plan["tco"]))
    text = (f"TCO {_usd(plan['tco']['usd_per_hour'])}/hour = {parts}. Capital is the purchase price recovered as an "
            "annuity over the ownership period (none for sunk devices); power is TDP x utilisation x PUE x "
            "electricity price; overhead is a yearly share of the purchase price; cloud rental is the whole "
            "price under cloud pricing (hetc.model.tco, docs/cost-model.md).")
    if owned:
        text += " Owned devices: " + ", ".join(f"{d['owned']}x {d['device']}" for d in owned) + "."
    return text
