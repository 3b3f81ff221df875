"""The run plan (plan.json, schema hetc/schemas/plan.schema.json, docs/plan.md) from the placed IR.

Stages are the graph's inputs and outputs, its placed task ops and its KV transfers; MoE gate/merge,
all-reduce and transfer ops are folded into the stages and edges they belong to. Stage ids are derived
from op names by `stage_id` (lower-case, [a-z0-9_.-], a hash suffix when anything was changed), so user
text never becomes a file, DNS or label name; the original node id is kept as data in `node`.
"""

from __future__ import annotations

import hashlib
import re

from xdsl.traits import SymbolTable

from hetc import __version__
from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.dialects.interfaces import DECODE, PREFILL, Costed, Served
from hetc.flow import analyse, moves_kv, payload_bytes, placeable, producers
from hetc.model.tco import COMPONENTS, TcoParams, device_hour_usd
from hetc.spec.frontend import arch_from_attr, value_from_attr

SCHEMA_VERSION = 1
_STAGE_CHARS = re.compile(r"[^a-z0-9_.-]+")

def stage_id(name: str) -> str:
    name = name.replace("/", ".")  # ops inlined from a nested agent are named <call>/<op>
    clean = _STAGE_CHARS.sub("-", name.lower()).strip("-.") or "stage"
    if not clean[0].isalnum():
        clean = "s" + clean
    if clean != name:
        clean = f"{clean[:100]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return clean


def _is_stage(op) -> bool:
    # a KV transfer is a stage once placed (with the op that reads the cache); an unplaced one is folded
    return placeable(op) or isinstance(op, A.InputOp) or (moves_kv(op) and op.placement() is not None)


def _role(op) -> str:
    """The LLM phase a stage is (prefill / decode), "" for every other stage."""
    costed = op.get_trait(Costed) if isinstance(op, T.TaskOp) else None
    return costed.role if costed is not None else ""


def _service(op, est: dict, device) -> dict:
    """The service model of the stage, as the op is served (hetc/dialects/interfaces.py, Served)."""
    batch = op.placement().batch.data if op.placement() else 1
    return op.get_trait(Served).service(op, est, batch, device)


def build_plan(module, spec, db, pass_names: list[str], kernels: dict[str, dict[str, list[str]]], options,
               summary: dict | None) -> dict | None:
    """The plan of a placed module, which passes hetc's own schema (hetc.bundle.schema) or nothing is written;
    None when the pipeline did not run place (the bundle then holds the IR only). `summary` is place's
    plan-wide report (hetc.passes.common.pass_report), which the compile driver hands on."""
    from hetc.bundle.schema import check_built_plan
    from hetc.placement.problem import module_kv_paths, output_tokens_per_request

    if "place" not in pass_names or summary is None:
        return None
    graph = next(o for o in module.body.block.ops if isinstance(o, A.GraphOp) and "hetc.subagent" not in o.attributes)
    target = T.module_target(module)
    slo = value_from_attr(graph.attributes["hetc.slo"])
    traffic = value_from_attr(graph.attributes["hetc.traffic"])
    hardware = value_from_attr(graph.attributes["hetc.hardware"])
    rate = summary["request_rate_rps"]
    kv_table, kv_level = module_kv_paths(module)
    plan = {
        "schema_version": SCHEMA_VERSION,
        "name": spec.name,
        "pd": summary.get("pd") or None,
        "provenance": {"hetc_version": __version__, "spec_sha256": spec.source_sha256,
                       "hwdb": target.hwdb.data if target else db.name,
                       "hwdb_sha256": target.sha256.data if target else db.sha256,
                       "solver": summary.get("solver", "none"), "pipeline": ",".join(pass_names),
                       "gap": summary.get("gap"), "lower_bound": summary.get("bound") or "none",
                       "kv_paths": {"level": kv_level, "table": kv_table.name}},
        "slo": {"latency_ms": slo.get("latency_ms"), "percentile": slo.get("percentile", "p99"),
                "ttft_ms": slo.get("ttft_ms"), "tbt_ms": slo.get("tbt_ms"),
                "latency_percentiles_ms": slo.get("percentiles") or {}},
        "traffic": {"requests_per_s": traffic.get("requests_per_s"), "objective": traffic.get("objective"),
                    "planned_requests_per_s": rate, "rate_basis": summary.get("rate_basis") or None,
                    **{k: traffic.get(k) for k in ("tokens_per_day", "requests", "deadline_h")}},
        "stages": [], "edges": [], "paths": [], "paths_total": 0, "baselines": [], "devices": [],
    }
    params = TcoParams.from_hwdb(db)
    pricing = hardware.get("pricing", "ownership")
    sunk = {dev: bool(v.get("sunk", 0)) for dev, v in hardware.get("inventory", {}).items()}
    flow = analyse(graph)
    priced = {(e["src"], e["dst"]): e for e in summary["edges"]}
    estimates = {op.sym_name.data: T.estimate_of(op) for op in graph.walk() if "estimate" in op.attributes}
    ids: dict[object, str] = {}
    roles: dict[str, str] = {}  # stage id -> the LLM phase it is
    used_ids: set[str] = set()
    for op in graph.walk():
        if not _is_stage(op) and not isinstance(op, A.OutputOp):
            continue
        sid = stage_id(op.sym_name.data)
        while sid in used_ids:
            sid = f"{sid}-{len(used_ids)}"
        used_ids.add(sid)
        ids[op] = sid
        roles[sid] = _role(op)
        plan["stages"].append(_stage(op, sid, db, flow, rate, kernels, params, pricing, sunk, priced, estimates))
    plan["edges"] = _edges(ids, priced)
    _record_kv_paths(plan["stages"], roles, db, kv_table, kv_level)
    names = {op.sym_name.data: sid for op, sid in ids.items()}
    limit = slo.get("latency_ms")
    targets = slo.get("percentiles") or {}
    plan["paths_total"] = summary["paths_total"]
    for path in summary["paths"]:
        # a path meets the SLA when it meets every percentile target (the highest is latency_ms)
        at = {p: {"latency_ms": ms, "limit_ms": targets[p], "meets": ms <= targets[p] + 1e-6}
              for p, ms in sorted((path.get("percentiles") or {}).items())}
        meets = (limit is None or path["latency_ms"] <= limit + 1e-6) and all(a["meets"] for a in at.values())
        entry = {"stages": [names[n] for n in path["path"]], "latency_ms": path["latency_ms"], "limit_ms": limit,
                 "slack_ms": path.get("slack_ms"), "meets": meets}
        if at:
            entry["percentiles"] = at
        plan["paths"].append(entry)
    # the plan's total is the sum of its stages (each the sum of its components): one source for every table
    tco = {f"{name}_usd_per_hour": sum(s["tco"][f"{name}_usd_per_hour"] for s in plan["stages"])
           for name in COMPONENTS}
    total = sum(s["tco"]["usd_per_hour"] for s in plan["stages"])
    tokens_per_request = output_tokens_per_request(flow)
    plan["tco"] = {
        "usd_per_hour": total,
        "usd_per_1m_requests": total / (rate * 3600) * 1e6 if rate else None,
        "usd_per_1m_tokens": total / (rate * tokens_per_request * 3600) * 1e6 if rate and tokens_per_request else None,
        "pricing": pricing, **tco,
    }
    for b in summary["baselines"]:
        cost = b.get("usd_per_hour")
        plan["baselines"].append({"device": b["device"], "usd_per_hour": cost, "feasible": bool(b["feasible"]),
                                  "reason": b.get("reason"), "relative_cost": total / cost if cost else None,
                                  "critical_path_ms": b.get("critical_path_ms")})
    plan["devices"] = [{"device": d["device"], "count": d["owned"] + d["bought"], "owned": d["owned"],
                        "bought": d["bought"]} for d in summary["devices"]]
    return check_built_plan(plan)


def stage_cost(device, devices: int, owned: int, pricing: str, params: TcoParams, sunk: bool) -> dict[str, float]:
    """A stage's $/hour by component: its owned devices at the owned price (no capital when sunk), the rest
    at the bought price; the same hetc.model.tco figures the placement priced the device classes with."""
    bought = device_hour_usd(device, pricing, params).components()
    mine = device_hour_usd(device, pricing, params, sunk=sunk).components()
    return {name: (devices - owned) * bought[name] + owned * mine[name] for name in COMPONENTS}


def _bands(device_id: str, predicted: dict) -> dict:
    """p10-p90 of each LLM figure from held-out calibration residuals (hetc/model/bands.py)."""
    from hetc.model.bands import band
    metric = {"latency_ms": "ttft_ms" if "ttft_ms" in predicted else "tbt_ms", "ttft_ms": "ttft_ms", "tbt_ms": "tbt_ms"}
    return {key: band(device_id, metric[key], predicted[key]) for key in ("latency_ms", "ttft_ms", "tbt_ms")
            if predicted.get(key) is not None}


def _stage(op, sid, db, flow, rate, kernels, params, pricing, sunk, priced, estimates) -> dict:
    place = op.placement() if isinstance(op, T.TaskOp) else None
    device = db.devices[place.device.data] if place is not None else None
    est = T.estimate_of(op)
    kind = "input" if isinstance(op, A.InputOp) else "output" if isinstance(op, A.OutputOp) else op.stage_kind()
    role = _role(op)
    model = None
    if "model" in op.properties:
        ref = SymbolTable.lookup_symbol(op, op.model)
        arch = arch_from_attr(ref.arch, ref.sym_name.data)
        model = {"id": ref.sym_name.data, "name": arch.name, "precision": ref.precision.data,
                 "max_context": arch.max_context}  # the spec's figure (its overrides), which the export serves
    # the engine the spec pins for the model, else the device class's (the same one the service's `api` follows)
    engine = op.get_trait(Served).engine_of(op, device) if placeable(op) else None
    replicas = place.replicas.data if place else 1
    per_replica = place.tp.data * place.pp.data if place else 0
    devices = replicas * per_replica if placeable(op) else 0
    owned = int(est.get("owned_devices", 0)) if devices else 0
    cost = {name: 0.0 for name in COMPONENTS}
    if device is not None and devices:
        cost = stage_cost(device, devices, owned, pricing, params, sunk.get(device.id, False))
    load = flow.load.get(op, 1.0)
    if moves_kv(op):
        est = dict(est, **_kv_estimate(op, priced, db))
    throughput = est.get("peak_throughput_rps")  # the planning figure keeps utilisation headroom
    utilisation = (rate * load / (replicas * throughput)) if throughput and (placeable(op) or moves_kv(op)) else None
    predicted = {"latency_ms": est.get("latency_ms", 0.0),
                 "throughput_rps": throughput,
                 "utilisation": utilisation, "memory_gb": est.get("memory_gb", 0.0)}
    if "tbt_ms" in est:
        predicted["tbt_ms"] = est["tbt_ms"]
    if role == PREFILL:  # TTFT = prefill + the KV move + the first decode step
        kv = priced.get((op.sym_name.data, f"{op.node.data}.decode"))
        decode = estimates.get(f"{op.node.data}.decode", {})
        predicted["ttft_ms"] = est["latency_ms"] + (kv["transfer_ms"] if kv else 0.0) + decode.get("tbt_ms", 0.0)
    if role and device is not None:
        predicted["band_p10_p90"] = _bands(device.id, predicted)
    return {
        "id": sid, "node": op.node.data if "node" in op.properties else op.sym_name.data, "kind": kind,
        "device": device.id if device else None, "vendor": device.vendor if device else None,
        "device_kind": device.kind if device else None,
        "target": _target(device) if placeable(op) or moves_kv(op) else "none",
        "replicas": replicas, "tp": place.tp.data if place else 1, "pp": place.pp.data if place else 1,
        "batch": place.batch.data if place else 1, "devices_per_replica": per_replica if placeable(op) else 0,
        "engine": engine, "model": model,
        # the files holding the kernels this stage calls at run time, and those kernels' symbols
        "kernels": list(kernels.get(op.sym_name.data, {}).get("files", [])) if isinstance(op, T.TaskOp) else [],
        "kernel_symbols": list(kernels.get(op.sym_name.data, {}).get("symbols", [])) if isinstance(op, T.TaskOp) else [],
        "service": _service(op, est, device) if isinstance(op, T.TaskOp) else {"type": "none"},
        "predicted": predicted,
        "invocations": {"expected": load, "worst": flow.worst.get(op, 1.0)},
        "tco": {"usd_per_hour": sum(cost.values()), **{f"{name}_usd_per_hour": cost[name] for name in COMPONENTS},
                "devices": devices, "owned_devices": owned},
    }


def _record_kv_paths(stages: list[dict], roles: dict[str, str], db, table, level: str) -> None:
    """A decode stage whose prefill runs on another device class names the KV path the placement priced the
    move with (the pair's entry at the compile's --kv-paths level; hetc.model.kvpaths), for the exporter."""
    from hetc.model.kvpaths import path_engine, path_record

    prefills = {s["node"]: s for s in stages if roles[s["id"]] == PREFILL and s["device"]}
    for stage in stages:
        prefill = prefills.get(stage["node"])
        if roles[stage["id"]] != DECODE or prefill is None or not stage["device"] or prefill["device"] == stage["device"]:
            continue
        path = table.lookup(db.devices[prefill["device"]], db.devices[stage["device"]],
                            path_engine(stage["engine"] or ""), level)
        record = path_record(path)
        stage["kv_path"] = None if record is None else {**record, "prefill_device": prefill["device"]}


def _target(device) -> str:
    from hetc.bundle.codegen import target_variant

    tv = target_variant(device) if device is not None else None
    return tv[0] if tv else "none"


def _kv_estimate(op, priced: dict, db) -> dict:
    """One request's KV cache and its move as the placement priced it. Between two device classes the move
    holds one link of the pair's path per move, the decode replica's links in parallel: the same link the
    placement sized the replicas with (hetc.placement.problem.kv_link_peak_rps), so the simulator's transfer
    stage has the capacity the plan counted on."""
    from hetc.model.kvpaths import links_per_replica, moves_per_s, transfer_cost, transfer_service
    from hetc.placement.problem import kv_cache_bytes, kv_engine, module_kv_paths

    module = op.get_toplevel_object()
    size = kv_cache_bytes(module, op)
    edge = priced.get((f"{op.node.data}.prefill", f"{op.node.data}.decode"))
    if edge is None or edge["src_device"] == edge["dst_device"]:  # the placement prices no move within a class
        return {"latency_ms": 0.0, "bytes": size}
    table, level = module_kv_paths(module)
    src, dst = db.devices[edge["src_device"]], db.devices[edge["dst_device"]]
    path = table.lookup(src, dst, kv_engine(module, op), level)
    links = links_per_replica(path, op.placement().tp.data * op.placement().pp.data)
    service = transfer_service(path, size, src, dst, links)
    return {"latency_ms": transfer_cost(path, size, src, dst).seconds * 1e3, "link_latency_ms": service["latency_ms"],
            "bytes": size, "bandwidth_gbs": service["bandwidth_gbs"], "links": links,
            "peak_throughput_rps": moves_per_s(path, size, src, dst, links)}


def _edges(ids, priced) -> list[dict]:
    out = []
    seen = set()
    for dst in ids:
        for operand in dst.operands:
            for src, prob, _kv, back, bound in producers(operand, stop=_is_stage):
                if src not in ids:
                    continue
                key = (ids[src], ids[dst], back)
                if key in seen:
                    continue
                seen.add(key)
                size = payload_bytes(operand)
                if moves_kv(dst):
                    size = 0.0
                move = priced.get((src.sym_name.data, dst.sym_name.data))
                out.append({"src": ids[src], "dst": ids[dst], "payload_bytes": float(size),
                            "transport": _transport(src, dst), "predicted_ms": move["transfer_ms"] if move else 0.0,
                            "probability": prob, "max_iterations": bound if back else None, "back_edge": back})
    return out


def _transport(src, dst) -> str:
    if isinstance(src, A.InputOp) or isinstance(dst, A.OutputOp):
        return "http"
    pa, pb = src.placement(), dst.placement()
    if pa is not None and pb is not None and pa.device == pb.device:
        return "in-process"
    served = dst.get_trait(Served)
    if served is not None and served.reached_by:
        return served.reached_by
    kinds = {p.kind.data for p in (pa, pb) if p is not None and p.kind.data}
    return "ethernet" if "cpu" in kinds else "roce"
