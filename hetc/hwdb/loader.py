"""Load a hardware database: the YAML files of one named database plus user overlays (--hwdb-extra).

A database is a folder: `database.yaml` (name, TCO defaults) and one `<device-id>.yaml` per device class.
`default` is this folder; `paper-2025` is the sub-folder of the paper's Table 5; any other name is taken as a
path to such a folder. A device file may say `inherits: <id>` to start from that device of the default
database. An extra file holds one device mapping or `devices: [...]`; an entry whose id already exists
overrides just the fields it gives (a calibration overlay, a price change), a new id adds a device.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hetc.errors import Diagnostic, HetcError, Loc

from .schema import Device, FieldErrors, build_device

HWDB_DIR = Path(__file__).resolve().parent
NAMED_DATABASES = {"default": HWDB_DIR, "paper-2025": HWDB_DIR / "paper-2025"}
DATABASE_FILE = "database.yaml"
TCO_KEYS = ("years", "rate", "electricity_usd_per_kwh", "pue", "utilisation", "overhead_frac_of_capex_per_year")


@dataclass
class HardwareDB:
    name: str
    devices: dict[str, Device]  # canonical id -> device, sorted by id
    tco_defaults: dict[str, float]
    sha256: str  # of every loaded file's bytes, for provenance
    files: tuple[str, ...] = ()
    description: str = ""
    _alias_map: dict[str, str] = field(default_factory=dict, repr=False)

    def resolve(self, name_or_alias: str) -> str | None:
        """Canonical id for an id or alias (case-insensitive), or None."""
        return self._alias_map.get(name_or_alias.strip().lower())

    def get(self, name_or_alias: str) -> Device:
        dev_id = self.resolve(name_or_alias)
        if dev_id is None:
            raise HetcError(f"unknown device {name_or_alias!r} in hardware database {self.name!r}; known: "
                            + ", ".join(self.devices))
        return self.devices[dev_id]

    def aliases(self) -> dict[str, str]:
        """Every alias and id -> canonical id."""
        return dict(sorted(self._alias_map.items()))


_CACHE: dict[tuple, HardwareDB] = {}


def load_hwdb(name: str = "default", extra: Iterable[str | Path] = ()) -> HardwareDB:
    """Load and validate a database (cached per name, extra files and their modification times)."""
    folder = NAMED_DATABASES.get(name) or Path(name)
    if not folder.is_dir():
        raise HetcError(f"unknown hardware database {name!r}: expected one of {', '.join(NAMED_DATABASES)} "
                        "or a folder of device YAML files")
    extra_paths = tuple(Path(p) for p in extra)
    for path in extra_paths:
        if not path.is_file():
            raise HetcError(f"--hwdb-extra file not found: {path}")
    files = _database_files(folder) + extra_paths
    key = (str(folder.resolve()), tuple((str(p), p.stat().st_mtime_ns) for p in files))
    if key not in _CACHE:
        _CACHE[key] = _load(folder, extra_paths)
    return _CACHE[key]


def _database_files(folder: Path) -> tuple[Path, ...]:
    paths = sorted(folder.glob("*.yaml"))
    if not (folder / DATABASE_FILE).is_file():
        raise HetcError(f"{folder}: not a hardware database (no {DATABASE_FILE})")
    return tuple(paths)


def _load(folder: Path, extra_paths: tuple[Path, ...]) -> HardwareDB:
    digest = hashlib.sha256()
    meta_bytes = read_yaml_bytes(folder / DATABASE_FILE)
    meta, meta_locs = read_yaml_locs(folder / DATABASE_FILE, meta_bytes)
    digest.update(b"database.yaml\0" + meta_bytes)
    diagnostics: list[Diagnostic] = []
    tco = _tco_defaults(meta, meta_locs, folder / DATABASE_FILE, diagnostics)

    raw: dict[str, tuple[dict, dict]] = {}  # id -> (merged mapping, per-field locations)
    base: dict[str, tuple[dict, dict]] | None = None
    for path in sorted(folder.glob("*.yaml")):
        if path.name == DATABASE_FILE:
            continue
        raw_bytes = read_yaml_bytes(path)
        digest.update(path.name.encode() + b"\0" + raw_bytes)
        data, locs = read_yaml_locs(path, raw_bytes)
        entry = _device_entry(data, locs, path, diagnostics)
        if entry is None:
            continue
        mapping, entry_locs = entry
        dev_id = mapping.get("id")
        if path.stem != dev_id:
            diagnostics.append(Diagnostic(entry_locs.get(("id",), Loc(str(path))),
                                          f"field 'id': {dev_id!r} must match the file name {path.stem!r}"))
            continue
        if "inherits" in mapping:
            if base is None:
                base = _raw_default_devices()
            parent = base.get(mapping["inherits"])
            if parent is None:
                diagnostics.append(Diagnostic(entry_locs[("inherits",)],
                                              f"field 'inherits': no device {mapping['inherits']!r} in the "
                                              "default database"))
                continue
            mapping, entry_locs = _merge(parent, (mapping, entry_locs))
        raw[dev_id] = (mapping, entry_locs)

    for path in extra_paths:
        raw_bytes = read_yaml_bytes(path)
        digest.update(b"extra\0" + path.name.encode() + b"\0" + raw_bytes)
        data, locs = read_yaml_locs(path, raw_bytes)
        entries: list[tuple[dict, dict]] = []
        if isinstance(data, dict) and "devices" in data and "id" not in data:
            if not isinstance(data["devices"], list):
                diagnostics.append(Diagnostic(locs.get(("devices",), Loc(str(path))),
                                              "field 'devices': expected a list of device mappings"))
                continue
            for index, item in enumerate(data["devices"]):
                sub_locs = {k[2:]: v for k, v in locs.items() if k[:2] == ("devices", index)}
                entry = _device_entry(item, sub_locs, path, diagnostics)
                if entry:
                    entries.append(entry)
        else:
            entry = _device_entry(data, locs, path, diagnostics)
            if entry:
                entries.append(entry)
        first_in_file: dict[str, Loc] = {}
        for mapping, entry_locs in entries:
            dev_id = mapping["id"]
            here = entry_locs.get(("id",), Loc(str(path)))
            if dev_id in first_in_file:  # one file, one entry per device: "last wins" would hide a mistake
                diagnostics.append(Diagnostic(here, f"device {dev_id!r} is defined twice in this file (first at "
                                                    f"{first_in_file[dev_id]}); merge the two entries"))
                continue
            first_in_file[dev_id] = here
            if dev_id in raw:
                raw[dev_id] = _merge(raw[dev_id], (mapping, entry_locs))
            elif "inherits" in mapping:
                parent = raw.get(mapping["inherits"]) or (base or _raw_default_devices()).get(mapping["inherits"])
                if parent is None:
                    diagnostics.append(Diagnostic(entry_locs[("inherits",)],
                                                  f"field 'inherits': unknown device {mapping['inherits']!r}"))
                    continue
                raw[dev_id] = _merge(parent, (mapping, entry_locs))
            else:
                raw[dev_id] = (mapping, entry_locs)

    devices: dict[str, Device] = {}
    for dev_id in sorted(raw):
        mapping, locs = raw[dev_id]
        mapping = {k: v for k, v in mapping.items() if k != "inherits"}
        file = str(locs.get((), Loc("?")).file)
        errors = FieldErrors(locs, Loc(file))
        device = build_device(mapping, errors, file)
        diagnostics.extend(errors.items)
        if device is not None:
            devices[dev_id] = device
    alias_map = _alias_map(devices, raw, diagnostics)
    if diagnostics:
        raise HetcError(diagnostics)
    if not devices:
        raise HetcError(f"hardware database {folder} holds no devices")
    name = meta.get("name") if isinstance(meta, dict) else None
    return HardwareDB(
        name=str(name or folder.name), devices=devices, tco_defaults=tco, sha256=digest.hexdigest(),
        files=tuple(sorted(str(p) for p in (*folder.glob("*.yaml"), *extra_paths))),
        description=str(meta.get("description", "")).strip() if isinstance(meta, dict) else "",
        _alias_map=alias_map)


def _raw_default_devices() -> dict[str, tuple[dict, dict]]:
    out: dict[str, tuple[dict, dict]] = {}
    for path in sorted(HWDB_DIR.glob("*.yaml")):
        if path.name == DATABASE_FILE:
            continue
        data, locs = read_yaml_locs(path)
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            out[data["id"]] = (data, locs)
    return out


def _device_entry(data: Any, locs: dict, path: Path, diagnostics: list[Diagnostic]) -> tuple[dict, dict] | None:
    if not isinstance(data, dict):
        diagnostics.append(Diagnostic(locs.get((), Loc(str(path))), "expected a device mapping with an id"))
        return None
    if not isinstance(data.get("id"), str):
        diagnostics.append(Diagnostic(locs.get((), Loc(str(path))), "field 'id': is required (a string)"))
        return None
    return data, locs


def _merge(base: tuple[dict, dict], override: tuple[dict, dict]) -> tuple[dict, dict]:
    """Override's top-level fields replace the base's; `sources` entries merge per field."""
    base_map, base_locs = base
    over_map, over_locs = override
    merged = dict(base_map)
    locs = dict(base_locs)
    # a replaced number must bring its own source: drop the base's source for every overridden field
    base_sources = base_map.get("sources") if isinstance(base_map.get("sources"), dict) else {}
    over_sources = over_map.get("sources") if isinstance(over_map.get("sources"), dict) else {}
    kept = {k: v for k, v in base_sources.items() if k not in over_map or k in over_sources}
    merged["sources"] = {**kept, **over_sources}
    for key, value in over_map.items():
        if key == "sources" and isinstance(value, dict):
            locs.update({k: v for k, v in over_locs.items() if k and k[0] == "sources"})
        else:
            merged[key] = value
            locs = {k: v for k, v in locs.items() if not (k and k[0] == key)}
    locs.update({k: v for k, v in over_locs.items() if k})
    locs[()] = over_locs.get((), base_locs.get(()))
    return merged, locs


def _alias_map(devices: dict[str, Device], raw: dict, diagnostics: list[Diagnostic]) -> dict[str, str]:
    owner: dict[str, str] = {}
    for dev_id in sorted(devices):
        owner[dev_id] = dev_id
    for dev_id in sorted(devices):
        for alias in devices[dev_id].aliases:
            previous = owner.get(alias)
            if previous is not None and previous != dev_id:
                loc = raw[dev_id][1].get(("aliases",), Loc(devices[dev_id].source_file))
                diagnostics.append(Diagnostic(loc, f"field 'aliases': {alias!r} is claimed by both {previous!r} and {dev_id!r}"))
                continue
            owner[alias] = dev_id
    return owner


def _tco_defaults(meta: Any, locs: dict, path: Path, diagnostics: list[Diagnostic]) -> dict[str, float]:
    tco = meta.get("tco_defaults") if isinstance(meta, dict) else None
    if not isinstance(tco, dict):
        diagnostics.append(Diagnostic(Loc(str(path)), "field 'tco_defaults': is required (a mapping)"))
        return {}
    out: dict[str, float] = {}
    for key in sorted(set(tco) - set(TCO_KEYS)):
        diagnostics.append(Diagnostic(locs.get(("tco_defaults", key), Loc(str(path))),
                                      f"field 'tco_defaults.{key}': unknown; expected {', '.join(TCO_KEYS)}"))
    for key in TCO_KEYS:
        value = tco.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e300:
            value = None  # hundreds of digits: float() would overflow
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            diagnostics.append(Diagnostic(locs.get(("tco_defaults", key), Loc(str(path))),
                                          f"field 'tco_defaults.{key}': expected a finite non-negative number"))
            continue
        out[key] = float(value)
    return out


def read_yaml_bytes(path: Path) -> bytes:
    """A YAML file's bytes: a regular file of at most the spec reader's size limit (never a FIFO or a device)."""
    from hetc.spec.yaml_source import MAX_FILE_BYTES
    from hetc.userfiles import UnreadableFile, read_regular_file

    try:
        return read_regular_file(path, MAX_FILE_BYTES, "YAML files")
    except UnreadableFile as exc:
        raise HetcError(f"cannot read the file: {exc}", Loc(str(path))) from None


def read_yaml_locs(path: Path, data: bytes | None = None) -> tuple[Any, dict[tuple, Loc]]:
    """Parse YAML (the file at path, or its bytes already read) keeping the line:column of every mapping
    value (path tuple -> Loc)."""
    try:
        text = (read_yaml_bytes(path) if data is None else data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HetcError(f"not UTF-8 text (byte {exc.start})", Loc(str(path))) from None
    # the spec reader's limits first: no tags, no alias bombs or recursive aliases, bounded depth and size
    from hetc.spec.yaml_source import parse_yaml

    parse_yaml(text.encode("utf-8"), str(path))
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Loc(str(path), mark.line + 1, mark.column + 1) if mark else Loc(str(path))
        raise HetcError([Diagnostic(loc, f"invalid YAML: {getattr(exc, 'problem', exc)}")]) from None
    locs: dict[tuple, Loc] = {}
    if node is None:
        return None, {(): Loc(str(path))}
    value = _to_python(node, str(path), (), locs, loader)
    return value, locs


def _to_python(node: yaml.Node, file: str, path: tuple, locs: dict, loader: yaml.SafeLoader) -> Any:
    locs[path] = Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            key_loc = Loc(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key, str):
                raise HetcError([Diagnostic(key_loc, f"expected a string key, got {key!r}")])
            if key in out:
                raise HetcError([Diagnostic(key_loc, f"field '{key}': duplicate key")])
            out[key] = _to_python(value_node, file, path + (key,), locs, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, file, path + (i,), locs, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node)
