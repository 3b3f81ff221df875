"""The spec's settings besides its graph: `slo` (latency percentiles, TTFT, TBT), `traffic` (online rate or
offline volume) and `hardware` (device pool, owned inventory, pricing), device names resolved against the
hardware database."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from hetc.errors import Loc
from hetc.spec import SLO, Hardware, Inventory, Traffic
from hetc.spec.rules import (
    MAX_DEADLINE_H,
    MAX_DEVICES,
    MAX_OFFLINE_REQUESTS,
    MAX_RPS,
    MAX_TOKENS_PER_DAY,
    MS,
    OBJECTIVES,
    OFFLINE_VOLUME_KEYS,
    PERCENTILES,
    PRICING_MODES,
    FieldRule,
)
from hetc.spec.values import ValueReader, did_you_mean, fmt
from hetc.spec.yaml_source import YamlList, YamlMap, YamlNode


class SettingsReader(ValueReader):
    """Reads slo, traffic and hardware."""

    device_aliases: Mapping[str, str] | None  # accepted device names -> canonical ids; None: not checked

    def slo(self, node: YamlNode | None) -> SLO:
        slo = SLO()
        ymap = self.mapping(node, "slo") if node is not None else None
        if ymap is None:
            return slo
        slo.loc = ymap.loc
        found = self.keys(ymap, "in slo", ("latency_ms", "ttft_ms", "tbt_ms"),
                          rules={k: FieldRule(k, "number", **MS) for k in ("latency_ms", "ttft_ms", "tbt_ms")})
        ms_rule = FieldRule("latency_ms", "number", **MS)
        if "latency_ms" in found:
            latency = found["latency_ms"][1]
            if isinstance(latency, YamlMap):
                targets = self.keys(latency, "in slo.latency_ms", PERCENTILES)
                for pct, (_, value) in targets.items():
                    ms = self.number(value, FieldRule(pct, "number", **MS))
                    if ms is not None:
                        slo.latency_percentiles_ms[pct] = ms
                if not latency.entries:
                    self.error(latency.loc, f"slo.latency_ms needs at least one of {'|'.join(PERCENTILES)}")
                ordered = [(p, slo.latency_percentiles_ms[p]) for p in PERCENTILES if p in slo.latency_percentiles_ms]
                for (low_p, low), (high_p, high) in itertools.pairwise(ordered):
                    if low > high:
                        self.error(targets[high_p][1].loc, f"the {high_p} latency target ({fmt(high)} ms) is below "
                                                           f"the {low_p} target ({fmt(low)} ms)")
                slo.latency_percentiles_ms = dict(sorted(slo.latency_percentiles_ms.items()))
                if ordered:
                    slo.percentile, slo.latency_ms = ordered[-1]
            else:
                ms = self.number(latency, ms_rule)
                if ms is not None:
                    slo.latency_ms, slo.percentile = ms, "p99"
                    slo.latency_percentiles_ms = {"p99": ms}
        for key in ("ttft_ms", "tbt_ms"):
            if key in found:
                setattr(slo, key, self.number(found[key][1], FieldRule(key, "number", **MS)))
        if slo.ttft_ms is not None and slo.latency_ms is not None and slo.ttft_ms > slo.latency_ms:
            self.error(found["ttft_ms"][1].loc, f"ttft_ms ({fmt(slo.ttft_ms)}) exceeds the end-to-end latency "
                                                f"target ({fmt(slo.latency_ms)} ms)")
        return slo

    def traffic(self, node: YamlNode | None, top_loc: Loc) -> Traffic:
        traffic = Traffic()
        if node is None:
            self.error(top_loc, "missing required key 'traffic' at the top level (requests_per_s: N, or "
                                "objective: tokens_per_dollar for offline work)")
            return traffic
        ymap = self.mapping(node, "traffic")
        if ymap is None:
            return traffic
        traffic.loc = ymap.loc
        found = self.keys(ymap, "in traffic", ("requests_per_s", "objective", *OFFLINE_VOLUME_KEYS))
        if ("requests_per_s" in found) == ("objective" in found):
            self.error(ymap.loc, "traffic needs exactly one of 'requests_per_s' (online) or 'objective' (offline)")
        self.offline_volume(ymap, found, traffic)
        if "requests_per_s" in found:
            traffic.requests_per_s = self.number(found["requests_per_s"][1], FieldRule(
                "requests_per_s", "number", unit="requests per second", limit=MAX_RPS))
        if "objective" in found:
            traffic.objective = self.choice(found["objective"][1], FieldRule("objective", "choice",
                                                                            choices=OBJECTIVES))
        return traffic

    def offline_volume(self, ymap: YamlMap, found: dict, traffic: Traffic) -> None:
        """Offline work is sized by its volume: tokens_per_day, or requests within deadline_h hours."""
        given = [k for k in OFFLINE_VOLUME_KEYS if k in found]
        if "objective" not in found or "requests_per_s" in found:  # online (or already reported)
            for key in given:
                self.error(found[key][0].loc, f"'{key}' sizes offline work; it needs 'objective' (not requests_per_s)")
            return
        if given not in (["tokens_per_day"], ["requests", "deadline_h"]):
            self.error(ymap.loc, "offline traffic needs its volume: 'tokens_per_day: N' (generated tokens a day), or "
                                 "'requests: N' with 'deadline_h: H' (N requests done within H hours)")
        rules = {"tokens_per_day": FieldRule("tokens_per_day", "number", unit="tokens", limit=MAX_TOKENS_PER_DAY),
                 "requests": FieldRule("requests", "number", unit="requests", limit=MAX_OFFLINE_REQUESTS),
                 "deadline_h": FieldRule("deadline_h", "number", unit="hours", limit=MAX_DEADLINE_H)}
        for key in given:
            setattr(traffic, key, self.number(found[key][1], rules[key]))

    def device(self, node: YamlNode, where: str) -> str | None:
        name = self.string(node, f"a device name in {where}")
        if name is None or self.device_aliases is None:
            return name
        canonical = self.device_aliases.get(name) or self.device_aliases.get(name.strip().lower())
        if canonical is None:
            hint = did_you_mean(name, sorted(self.device_aliases))
            known = sorted(set(self.device_aliases.values()))
            self.error(node.loc, f"unknown device '{name}' in {where}"
                                 + (hint or f"; known devices: {', '.join(known)}"))
        return canonical

    def hardware(self, node: YamlNode | None) -> Hardware:
        hardware = Hardware()
        ymap = self.mapping(node, "hardware") if node is not None else None
        if ymap is None:
            return hardware
        hardware.loc = ymap.loc
        found = self.keys(ymap, "in hardware", ("pool", "inventory", "pricing"))
        if "pricing" in found:
            hardware.pricing = self.choice(found["pricing"][1], FieldRule("pricing", "choice",
                                                                          choices=PRICING_MODES)) or "ownership"
        if "pool" in found:
            pool_node = found["pool"][1]
            if not isinstance(pool_node, YamlList):
                self.error(pool_node.loc, f"hardware.pool must be a list of device names, got {pool_node.describe()}")
            elif not pool_node.items:
                self.error(pool_node.loc, "hardware.pool is empty; omit it to plan on the whole hardware database")
            else:
                pool: dict[str, str] = {}
                for item in pool_node.items:
                    device = self.device(item, "hardware.pool")
                    if device is None:
                        continue
                    if device in pool:
                        self.error(item.loc, f"device '{device}' is listed twice in hardware.pool (as "
                                             f"'{pool[device]}' and '{item.text}')")
                    pool[device] = getattr(item, "text", device)
                hardware.pool = list(pool)
        if "inventory" in found:
            inventory = self.mapping(found["inventory"][1], "hardware.inventory")
            if inventory is not None:
                self.keys(inventory, "in hardware.inventory", list(inventory.entries))
                for name, (key_node, value) in inventory.entries.items():
                    device = self.device(key_node, "hardware.inventory")
                    entry = self.inventory_entry(name, value)
                    if device is None or entry is None:
                        continue
                    if device in hardware.inventory:
                        self.error(key_node.loc, f"device '{device}' appears twice in hardware.inventory")
                    elif hardware.pool is not None and device not in hardware.pool:
                        self.error(key_node.loc, f"inventory device '{name}' is not in hardware.pool; add it to "
                                                 "the pool or remove it here")
                    hardware.inventory[device] = entry
        return hardware

    def inventory_entry(self, name: str, node: YamlNode) -> Inventory | None:
        ymap = self.mapping(node, f"hardware.inventory '{name}'")
        if ymap is None:
            return None
        found = self.keys(ymap, f"in hardware.inventory '{name}'", ("count", "sunk"), ("count",))
        count = self.number(found["count"][1], FieldRule("count", "int", unit="devices", allow_zero=True,
                                                         limit=MAX_DEVICES)) if "count" in found else None
        sunk = self.boolean(found["sunk"][1], FieldRule("sunk", "bool")) if "sunk" in found else False
        if count is None or sunk is None:
            return None
        return Inventory(int(count), sunk)
