"""KV-cache transfer paths: whether a serving engine can move a request's KV cache from a prefill device
class to a decode device class, how (GPU-direct RDMA, or staged through pinned host memory), how mature that
path is, and what one move costs.

The table is hetc/data/kv-paths.yaml (format in docs/kv-paths.md); a user overlays entries of their own with
`load_kv_paths(extra=[...])`, as with --hwdb-extra. Pricing is here too, so the planner, the report and the
exporters all read one answer per pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hetc.errors import Diagnostic, HetcError, Loc
from hetc.hwdb.schema import Device

STATUSES = ("released", "experimental", "proof_of_concept")  # most mature first
# --kv-paths LEVEL -> the statuses a plan may rely on
LEVELS: dict[str, tuple[str, ...]] = {"released": STATUSES[:1], "experimental": STATUSES[:2], "any": STATUSES}
DEFAULT_LEVEL = "released"
TRANSPORTS = ("gpu_direct_rdma", "host_staging", "tcp")
STAGING = ("none", "prefill", "decode", "both")
LAYOUT_TRANSFORMS = ("none", "permute_nhd_hnd")
FAMILIES = ("cuda", "rocm", "gaudi", "cpu")  # a side may name a family (the hwdb target), a device id, or any
# How many links of a replica carry KV moves at once: per_rank, every device's own link (each tensor-parallel
# rank moves its shard of the KV cache); per_replica, one link per replica (what an entry without a source for
# per-rank moves gets: the conservative figure).
PARALLEL_LINKS = ("per_rank", "per_replica")
_FIELDS = ("id", "prefill", "decode", "engine", "connector", "transport", "staging", "layout_transform", "status",
           "engine_version", "constraints", "kv_transfer_config", "env", "sources")
_OPTIONAL = {"parallel_links": "per_replica"}


@dataclass(frozen=True)
class KVPath:
    id: str
    prefill: str
    decode: str
    engine: str
    connector: str
    transport: str
    staging: str
    layout_transform: str
    status: str
    engine_version: str
    constraints: tuple[str, ...]
    kv_transfer_config: dict[str, Any] = field(compare=False)
    env: dict[str, str] = field(compare=False)
    sources: tuple[dict[str, str], ...] = field(compare=False)
    parallel_links: str = "per_replica"

    def stages_on(self, side: str) -> bool:
        """Does the `side` end ("prefill" or "decode") copy the KV cache through host memory?"""
        return self.staging in (side, "both")

    def specificity(self, prefill: Device, decode: Device) -> int | None:
        """How closely this entry names the pair (device id 2, family 1, any 0, per side); None: no match."""
        total = 0
        for side, device in ((self.prefill, prefill), (self.decode, decode)):
            if side == device.id:
                total += 2
            elif side == device.target:
                total += 1
            elif side != "any":
                return None
        return total


@dataclass(frozen=True)
class KVTransferCost:
    """One request's KV move along a path. Parts run one after another: vLLM-Gaudi copies a request's whole KV
    cache into the host buffer before NIXL sends it, and copies it to the device after it arrived (PR 421)."""

    seconds: float
    parts_s: dict[str, float]  # network_s, d2h_s, h2d_s, permute_prefill_s, permute_decode_s
    host_bytes: dict[str, float]  # host-memory traffic per staging end (DMA write + NIC read, or the reverse)


class KVPathTable:
    def __init__(self, paths: list[KVPath], name: str):
        self.paths = tuple(paths)
        self.name = name

    def candidates(self, prefill: Device, decode: Device, engine: str) -> list[KVPath]:
        """Entries for the pair, best first: most specific, then most mature."""
        scored = [(p.specificity(prefill, decode), p) for p in self.paths if p.engine == engine]
        scored = [(s, p) for s, p in scored if s is not None]
        scored.sort(key=lambda sp: (-sp[0], STATUSES.index(sp[1].status), sp[1].id))
        return [p for _, p in scored]

    def lookup(self, prefill: Device, decode: Device, engine: str = "vllm", level: str = "released") -> KVPath | None:
        """The path a plan at `level` would use between two device classes, or None when there is none."""
        allowed = LEVELS[level]
        return next((p for p in self.candidates(prefill, decode, engine) if p.status in allowed), None)

    def why_not(self, prefill: Device, decode: Device, engine: str = "vllm", level: str = "released") -> str:
        """The reason a pair has no path at `level`, naming the best path beyond it if one exists."""
        reason = f"no {level} {engine} path moves a KV cache from {prefill.id} to {decode.id}"
        beyond = self.candidates(prefill, decode, engine)
        if beyond:
            best = beyond[0]
            reason += f"; {best.status.replace('_', ' ')}: {best.id} ({best.engine_version})"
        return reason


def path_engine(engine: str) -> str:
    """The table's engine for a model's serving engine: vllm-gaudi and the default ("") are vLLM."""
    return engine if engine in ("sglang", "trtllm") else "vllm"


def path_record(path: KVPath | None) -> dict[str, Any] | None:
    """What a plan records of a pair's path (plan.schema.json kv_path): enough for the exporter to configure
    the engine and for a reader to see how mature the path is."""
    if path is None:
        return None
    return {"id": path.id, "status": path.status, "engine": path.engine, "engine_version": path.engine_version,
            "connector": path.connector, "transport": path.transport, "staging": path.staging,
            "layout_transform": path.layout_transform, "kv_transfer_config": dict(path.kv_transfer_config),
            "env": dict(path.env), "sources": [s["url"] for s in path.sources]}


# the --kv-paths level a plan needs to rely on a path of each status
LEVEL_NEEDED = {"released": "released", "experimental": "experimental", "proof_of_concept": "any"}


def pair_status(table: KVPathTable, prefill: Device, decode: Device, engine: str = "vllm") -> dict[str, str]:
    """For a sweep row: the most mature path of a P::D pair (at any level), its status ("proof of concept",
    or "none" without one) and the --kv-paths level a plan on the pair needs (a same-class pair moves
    nothing between classes, so any level serves it)."""
    path = table.lookup(prefill, decode, engine, "any")
    if prefill.id == decode.id:
        return {"kv_path": path.id if path else "", "kv_path_status": "same class", "kv_level_needed": "released"}
    if path is None:
        return {"kv_path": "", "kv_path_status": "none", "kv_level_needed": "none"}
    return {"kv_path": path.id, "kv_path_status": path.status.replace("_", " "),
            "kv_level_needed": LEVEL_NEEDED[path.status]}


@dataclass(frozen=True)
class KVLink:
    """One link a KV move holds along a path: a device's NIC (hwdb scaleout_gbs, per device) and, on a staging
    end, its host link and memory for the permute. A move of B bytes holds it latency_s + B / rate for each
    part, the parts one after another (the Gaudi host buffer copies a whole KV cache before NIXL sends it)."""

    latency_s: float  # the larger NIC latency
    rates: dict[str, float]  # bytes/s of each part: network_s, d2h_s, h2d_s, permute_prefill_s, permute_decode_s
    host_bytes_per_byte: dict[str, float]  # host-memory traffic per byte moved, per staging end

    def seconds(self, kv_bytes: float) -> float:
        return self.latency_s + sum(kv_bytes / rate for rate in self.rates.values())

    @property
    def gbs(self) -> float:
        """The link's throughput for KV moves (GB/s): the parts' rates in series."""
        return 1.0 / sum(1.0 / rate for rate in self.rates.values()) / 1e9


def kv_link(path: KVPath, src: Device, dst: Device) -> KVLink:
    """The link one KV move from a prefill device to a decode device holds along `path`.

    Network: the slower NIC plus the larger NIC latency (as for GPU-direct moves). A staging end adds a copy
    over its host link (PCIe or C2C, hwdb host_link_gbs), and with a layout transform a permute that reads and
    writes the KV cache once in device memory at its achievable bandwidth."""
    rates = {"network_s": min(src.scaleout_gbs, dst.scaleout_gbs) * 1e9}
    host: dict[str, float] = {}
    for side, device, copy in (("prefill", src, "d2h_s"), ("decode", dst, "h2d_s")):
        if not path.stages_on(side) or device.kind == "cpu":  # a CPU's KV cache is in host memory already
            continue
        if device.host_link_gbs is None:
            raise HetcError([Diagnostic(Loc(device.source_file or device.id),
                                        f"device '{device.id}' has no host_link_gbs, which the {path.id} KV path "
                                        "needs (it stages the KV cache through host memory)")])
        rates[copy] = device.host_link_gbs * 1e9
        host[side] = 2.0  # the DMA writes it, the NIC reads it (or the reverse)
        if path.layout_transform != "none":
            rates[f"permute_{side}_s"] = device.mem_bw_gbs * device.eff_bw * 1e9 / 2  # read + write
    return KVLink(max(src.scaleout_latency_us, dst.scaleout_latency_us) * 1e-6, rates, host)


def transfer_cost(path: KVPath, kv_bytes: float, src: Device, dst: Device) -> KVTransferCost:
    """Time for one request's KV cache of `kv_bytes` to go from a prefill device to a decode device over one
    link (kv_link)."""
    link = kv_link(path, src, dst)
    parts = {name: kv_bytes / rate for name, rate in link.rates.items()}
    parts["network_s"] += link.latency_s
    return KVTransferCost(seconds=sum(parts.values()), parts_s=parts,
                          host_bytes={side: f * kv_bytes for side, f in link.host_bytes_per_byte.items()})


def links_per_replica(path: KVPath, devices_per_replica: int) -> int:
    """Links one replica (tp x pp devices) moves KV caches over at once: one per device when every rank
    moves its own shard (parallel_links: per_rank), else one."""
    return devices_per_replica if path.parallel_links == "per_rank" else 1


def moves_per_s(path: KVPath, kv_bytes: float, src: Device, dst: Device, links: int) -> float:
    """KV moves per second `links` links sustain, each busy for one move at a time (at full utilisation)."""
    return links / kv_link(path, src, dst).seconds(kv_bytes)


def transfer_service(path: KVPath, kv_bytes: float, src: Device, dst: Device, links: int) -> dict[str, float]:
    """The plan's service entry of a KV-transfer stage replica (docs/plan.md, `transfer`): `links` channels
    sharing bandwidth_gbs, so each move takes latency_ms + bytes / (bandwidth_gbs / links) = one link's move
    (kv_link). The planner sizes replicas with moves_per_s from the same link, so the two agree."""
    link = kv_link(path, src, dst)
    return {"latency_ms": link.latency_s * 1e3, "bytes": kv_bytes, "bandwidth_gbs": links * link.gbs,
            "concurrency": links}


# ------------------------------------------------------------------------------------------------ loading
def load_kv_paths(extra: list[Path] | tuple[Path, ...] = ()) -> KVPathTable:
    """The bundled table with `extra` files overlaid (an entry with an existing id replaces it)."""
    bundled = resources.files("hetc") / "data" / "kv-paths.yaml"
    by_id: dict[str, KVPath] = {}
    for label, text in [("kv-paths.yaml", bundled.read_text())] + [(str(p), _read(p)) for p in extra]:
        for path in _parse(text, label):
            by_id[path.id] = path
    name = "default" if not extra else "default+" + "+".join(Path(p).stem for p in extra)
    return KVPathTable(sorted(by_id.values(), key=lambda p: p.id), name)


MAX_TABLE_BYTES = 1 << 20  # a KV-path table is a few kB; 1 MiB bounds a mistaken path (/dev/zero, a FIFO)


def _read(path: Path) -> str:
    from hetc.userfiles import UnreadableFile, read_regular_file

    try:
        return read_regular_file(path, MAX_TABLE_BYTES, "KV-path tables").decode("utf-8")
    except (UnreadableFile, UnicodeDecodeError) as exc:
        why = str(exc) if isinstance(exc, UnreadableFile) else "not UTF-8"
        raise HetcError([Diagnostic(Loc(str(path)), f"cannot read KV-path table: {why}")]) from None


def _parse(text: str, label: str) -> list[KVPath]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Loc(label, mark.line + 1, mark.column + 1) if mark else Loc(label)
        raise HetcError([Diagnostic(loc, "not valid YAML")]) from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("paths"), list):
        raise HetcError([Diagnostic(Loc(label), "expected a mapping with version: 1 and a list under paths:")])
    errors: list[str] = []
    paths, seen = [], set()
    for index, raw in enumerate(doc["paths"]):
        where = f"paths[{index}]"
        if not isinstance(raw, dict):
            errors.append(f"{where}: expected a mapping")
            continue
        problems = _check(raw)
        if raw.get("id") in seen:
            problems.append(f"duplicate id {raw.get('id')!r}")
        seen.add(raw.get("id"))
        if problems:
            errors += [f"{where}: {p}" for p in problems]
            continue
        paths.append(KVPath(**{**_OPTIONAL, **raw, "constraints": tuple(raw["constraints"]), "sources": tuple(raw["sources"]),
                               "env": {str(k): str(v) for k, v in raw["env"].items()}}))
    if errors:
        raise HetcError([Diagnostic(Loc(label), e) for e in errors])
    return paths


def _check(raw: dict[str, Any]) -> list[str]:
    problems = [f"unknown field {k!r}" for k in sorted(set(raw) - set(_FIELDS) - set(_OPTIONAL), key=str)]
    problems += [f"missing field {k!r}" for k in _FIELDS if k not in raw]
    if problems:
        return problems
    for key in ("id", "engine", "connector", "engine_version"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            problems.append(f"{key}: expected a non-empty string")
    for key in ("prefill", "decode"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            problems.append(f"{key}: expected a device id, a family ({', '.join(FAMILIES)}) or any")
    for key, choices in (("transport", TRANSPORTS), ("staging", STAGING), ("layout_transform", LAYOUT_TRANSFORMS),
                         ("status", STATUSES)):
        if raw[key] not in choices:
            problems.append(f"{key}: expected one of {', '.join(choices)}")
    if raw.get("parallel_links", _OPTIONAL["parallel_links"]) not in PARALLEL_LINKS:
        problems.append(f"parallel_links: expected one of {', '.join(PARALLEL_LINKS)}")
    if raw["transport"] == "gpu_direct_rdma" and raw["staging"] != "none":
        problems.append("staging: a gpu_direct_rdma path stages nothing (use host_staging)")
    if not isinstance(raw["constraints"], list) or not all(isinstance(c, str) for c in raw["constraints"]):
        problems.append("constraints: expected a list of strings")
    for key in ("kv_transfer_config", "env"):
        if not isinstance(raw[key], dict):
            problems.append(f"{key}: expected a mapping")
    sources = raw["sources"]
    if not isinstance(sources, list) or not sources or not all(
            isinstance(s, dict) and isinstance(s.get("url"), str) and s.get("date") for s in sources):
        problems.append("sources: expected a non-empty list of {url, date, note}")
    return problems
