"""CLI commands for the hardware database and the cost model: `hw list|show`, `estimate`, `calibrate`.

Kept cheap to import (click only at module level); hetc/cli/__init__.py registers these commands lazily.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from hetc.cli.options import hwdb_options
from hetc.errors import HetcError, printable_lines


def _user_errors(func: Callable) -> Callable:
    """Report HetcError as `file:line: error: ...` on stderr with its exit code, never a traceback."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HetcError as exc:
            click.echo(str(exc), err=True)
            sys.exit(exc.exit_code)
    return wrapper


def _load(hwdb: str, hwdb_extra: tuple[str, ...]):
    from hetc.hwdb.loader import load_hwdb
    return load_hwdb(hwdb, list(hwdb_extra))


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


# ------------------------------------------------------------------------------------------------ hw
@click.group("hw")
def hw() -> None:
    """Inspect the hardware database."""


@hw.command("list")
@hwdb_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_user_errors
def hw_list(hwdb: str, hwdb_extra: tuple[str, ...], as_json: bool) -> None:
    """List the device classes of a database."""
    db = _load(hwdb, hwdb_extra)
    rows = []
    for dev in db.devices.values():
        rows.append({
            "id": dev.id, "kind": dev.kind, "target": dev.target, "bf16_tflops": dev.peak_tflops["bf16"],
            "fp8_tflops": dev.peak_tflops["fp8"], "mem_gb": dev.mem_gb, "mem_bw_gbs": dev.mem_bw_gbs,
            "scaleup_gbs": dev.scaleup_gbs, "devices_per_chassis": dev.devices_per_chassis, "tdp_w": dev.tdp_w,
            "capex_usd": dev.capex_usd, "cloud_usd_per_hour": dev.cloud_usd_per_hour,
            "aliases": list(dev.aliases)})
    if as_json:
        click.echo(json.dumps({"hwdb": db.name, "sha256": db.sha256, "devices": rows}, indent=2, sort_keys=True))
        return
    from hetc.console import make_console, make_table

    numbers = ("BF16 TFLOPS", "FP8 TFLOPS", "mem GB", "mem GB/s", "scale-up GB/s", "per chassis", "TDP W", "capex $",
               "cloud $/h")
    table = make_table("id", "kind", "target", *numbers, right=numbers,
                       title=f"hardware database {db.name} ({len(rows)} devices, sha256 {db.sha256[:12]})")
    for r in rows:
        table.add_row(r["id"], r["kind"], r["target"], _fmt(r["bf16_tflops"], 1), _fmt(r["fp8_tflops"], 1),
                      _fmt(r["mem_gb"]), _fmt(r["mem_bw_gbs"]), _fmt(r["scaleup_gbs"]),
                      str(r["devices_per_chassis"]), _fmt(r["tdp_w"]), _fmt(r["capex_usd"]),
                      _fmt(r["cloud_usd_per_hour"], 2))
    make_console().print(table)


@hw.command("show")
@click.argument("device_id")
@hwdb_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_user_errors
def hw_show(device_id: str, hwdb: str, hwdb_extra: tuple[str, ...], as_json: bool) -> None:
    """Show every field of one device with its sources."""
    from dataclasses import asdict
    db = _load(hwdb, hwdb_extra)
    dev = db.get(device_id)
    data = asdict(dev)
    data["aliases"] = list(dev.aliases)
    data["source_file"] = dev.source_file
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    import yaml
    click.echo(printable_lines(yaml.safe_dump(data, sort_keys=False, width=120, allow_unicode=True).rstrip()))


# ------------------------------------------------------------------------------------------------ estimate
def _resolve_model(name: str):
    from hetc.model.models import PRESETS, resolve_preset
    arch = resolve_preset(name)
    if arch is None:
        raise HetcError(f"--model: unknown model {name!r}; expected a preset ({', '.join(sorted(PRESETS))}), a "
                        "bundled Hugging Face repo id or name (docs/cost-model.md#model-configs) or a config.json path")
    return arch


def _estimate_row(arch, device, precision, kv_precision, tp, pp, batch, input_tokens, output_tokens,
                  usd_per_hour: float | None, engine: str) -> dict[str, Any]:
    from hetc.model import costmodel as cm
    from hetc.model.bands import band
    from hetc.model.tco import usd_per_million_tokens
    est = cm.serve(arch, device, precision, kv_precision, tp, pp, batch, input_tokens, output_tokens, engine)
    replica_usd = None if usd_per_hour is None else usd_per_hour * est.devices
    return {
        "device": device.id, "model": arch.name, "precision": precision, "kv_precision": kv_precision,
        "compute_precision": est.decode.compute_precision, "tp": tp, "pp": pp, "batch": batch,
        "devices": est.devices, "input_tokens": input_tokens, "output_tokens": output_tokens,
        "ttft_ms": est.ttft_s * 1e3, "prefill_batch_ms": est.prefill.latency_s * 1e3,
        "tbt_ms": est.tbt_s * 1e3, "step_ms_base": est.decode.step_s_base * 1e3,
        "step_ms_per_seq": est.decode.step_s_per_seq * 1e3,
        "tokens_per_s": est.tokens_per_s, "tokens_per_s_per_device": est.tokens_per_s_per_device,
        "requests_per_s": est.requests_per_s,
        "memory_gb_per_device": est.decode.memory_bytes / 1e9,
        "memory_capacity_gb_per_device": est.decode.capacity_bytes / 1e9, "fits": est.fits,
        "bound": {"prefill": est.prefill.bound, "decode": est.decode.bound},
        "usd_per_device_hour": usd_per_hour, "engine": engine,
        "band_p10_p90": {"ttft_ms": band(device.id, "ttft_ms", est.ttft_s * 1e3),
                         "tbt_ms": band(device.id, "tbt_ms", est.tbt_s * 1e3),
                         "tokens_per_s": band(device.id, "tokens_per_s", est.tokens_per_s)},
        "usd_per_million_tokens": None if replica_usd is None else usd_per_million_tokens(replica_usd,
                                                                                          est.tokens_per_s),
    }


def _meets(row: dict[str, Any], ttft_ms: float | None, tbt_ms: float | None) -> list[str]:
    missed = []
    if not row["fits"]:
        missed.append(f"memory {row['memory_gb_per_device']:.1f} GB > {row['memory_capacity_gb_per_device']:.1f} GB")
    if ttft_ms is not None and row["ttft_ms"] > ttft_ms:
        missed.append(f"TTFT {row['ttft_ms']:.1f} ms > {ttft_ms:g} ms")
    if tbt_ms is not None and row["tbt_ms"] > tbt_ms:
        missed.append(f"TBT {row['tbt_ms']:.2f} ms > {tbt_ms:g} ms")
    return missed


def _positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise HetcError(f"{name} must be > 0, got {value}")


@click.command("estimate")
@click.option("--model", required=True, help="Model preset (e.g. llama-3-70b), bundled Hugging Face repo id "
                                              "(e.g. Qwen/Qwen3-8B) or a path to a config.json.")
@click.option("--engine", default=None,
              type=click.Choice(["vllm", "sglang", "trtllm", "vllm-gaudi", "lmdeploy", "gpt-fast"]),
              help="Serving engine profile (per-step overhead, memory reserve, batch cap); default: what the "
                   "deployment launches (vllm-gaudi on Gaudi, vllm elsewhere).")
@click.option("--precision", default="fp16", show_default=True, help="Weight/compute precision.")
@click.option("--kv-precision", default=None, help="KV-cache precision (default: --precision).")
@click.option("--device", required=True, help="Device id or alias (e.g. nvidia-h100-sxm, h100).")
@click.option("--tp", type=int, default=None, help="Tensor-parallel degree (default: the smallest that fits).")
@click.option("--pp", type=int, default=1, show_default=True, help="Pipeline-parallel degree.")
@click.option("--batch", type=int, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--input-tokens", type=int, default=512, show_default=True, help="Prompt length, tokens.")
@click.option("--output-tokens", type=int, default=512, show_default=True, help="Generated tokens per request.")
@click.option("--ttft-ms", type=float, default=None, help="TTFT target (checked; used by --max-throughput).")
@click.option("--tbt-ms", type=float, default=None, help="TBT target (checked; used by --max-throughput).")
@click.option("--max-throughput", is_flag=True, help="Search TP and batch for the highest tokens/s per device "
                                                      "(or per $) meeting the targets and memory.")
@click.option("--objective", type=click.Choice(["per-device", "per-dollar"]), default="per-device",
              show_default=True, help="What --max-throughput maximises.")
@click.option("--pricing", type=click.Choice(["ownership", "cloud"]), default="ownership", show_default=True,
              help="$ per device-hour: ownership (capital + power, docs/cost-model.md) or the cloud rental price.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@hwdb_options
@_user_errors
def estimate(model: str, engine: str | None, precision: str, kv_precision: str | None, device: str, tp: int | None, pp: int,
             batch: int, input_tokens: int, output_tokens: int, ttft_ms: float | None, tbt_ms: float | None,
             max_throughput: bool, objective: str, pricing: str, as_json: bool, hwdb: str,
             hwdb_extra: tuple[str, ...]) -> None:
    """Estimate TTFT, TBT, throughput, memory and $/1M tokens of an LLM on one device class."""
    from hetc.model import costmodel as cm
    from hetc.model.tco import TcoParams, device_hour_usd
    for name, value in (("--batch", batch), ("--pp", pp), ("--output-tokens", output_tokens),
                        ("--ttft-ms", ttft_ms), ("--tbt-ms", tbt_ms), ("--tp", tp)):
        _positive(name, value)
    if input_tokens < 0:
        raise HetcError(f"--input-tokens must be >= 0, got {input_tokens}")
    arch = _resolve_model(model)
    cm.precision_bytes(precision)
    kv_precision = kv_precision or precision
    cm.precision_bytes(kv_precision)
    db = _load(hwdb, hwdb_extra)
    dev = db.get(device)
    from hetc.model.engines import default_engine
    engine = engine or default_engine(dev)
    if arch.kind in ("encoder", "encoder_decoder"):
        _estimate_encoder(arch, dev, precision, batch, input_tokens, output_tokens, as_json)
        return
    usd_per_hour = (device_hour_usd(dev, pricing, TcoParams.from_hwdb(db)).total
                    if dev.has_price(pricing) else None)

    if max_throughput:
        best, best_score = None, -1.0
        for degree in cm.valid_tp(dev, arch):
            if tp is not None and degree != tp:
                continue
            top = cm.max_batch(arch, dev, precision, degree, pp, input_tokens, output_tokens, kv_precision,
                               tbt_s=None if tbt_ms is None else tbt_ms / 1e3, engine=engine)
            if top == 0:
                continue
            row = _estimate_row(arch, dev, precision, kv_precision, degree, pp, top, input_tokens, output_tokens,
                                usd_per_hour, engine)
            if _meets(row, ttft_ms, tbt_ms):
                continue
            if objective == "per-dollar":
                if usd_per_hour is None:
                    raise HetcError(f"--objective per-dollar: {dev.id} has no {pricing} price")
                score = 1.0 / row["usd_per_million_tokens"]
            else:
                score = row["tokens_per_s_per_device"]
            if score > best_score:
                best, best_score = row, score
        if best is None:
            raise HetcError(f"no tensor-parallel degree and batch of {arch.name} on {dev.id} meets the targets "
                            f"(TTFT {ttft_ms} ms, TBT {tbt_ms} ms) within memory")
        row = best
    else:
        if tp is None:
            tp = cm.min_tp(arch, dev, precision, kv_precision, pp, batch, input_tokens, output_tokens, engine)
            if tp is None:
                raise HetcError(f"{arch.name} with batch {batch} does not fit on one {dev.id} chassis "
                                f"({dev.max_tp} x {dev.mem_gb:g} GB) at any tensor-parallel degree")
        row = _estimate_row(arch, dev, precision, kv_precision, tp, pp, batch, input_tokens, output_tokens,
                            usd_per_hour, engine)
    row["meets_targets"] = not _meets(row, ttft_ms, tbt_ms)
    row["missed"] = _meets(row, ttft_ms, tbt_ms)
    row["hwdb"] = db.name
    row["hwdb_sha256"] = db.sha256
    row["pricing"] = pricing
    if as_json:
        click.echo(json.dumps(row, indent=2, sort_keys=True))
        return
    _print_estimate(row)


def _estimate_encoder(arch, dev, precision: str, batch: int, input_tokens: int, output_tokens: int,
                      as_json: bool) -> None:
    """Embedders and rerankers: one bidirectional pass over the input; Whisper-style models: the encoder
    over input_tokens frames and the transcript decode of output_tokens (no TBT of their own)."""
    from hetc.model import costmodel as cm
    from hetc.model.bands import band
    est = cm.encoder_model(arch, dev, precision, max(1, input_tokens), batch,
                           output_tokens if arch.kind == "encoder_decoder" else 0)
    row = {"device": dev.id, "model": arch.name, "kind": arch.kind, "precision": precision, "batch": batch,
           "input_tokens": input_tokens, "output_tokens": output_tokens if arch.kind == "encoder_decoder" else 0,
           "latency_ms": est.latency_s * 1e3, "items_per_s": batch / est.latency_s, "bound": est.bound,
           "memory_gb": est.memory_bytes / 1e9, "fits": est.fits,
           "band_p10_p90": {"latency_ms": band(dev.id, "ttft_ms", est.latency_s * 1e3)}}
    if as_json:
        click.echo(json.dumps(row, indent=2, sort_keys=True))
        return
    low, high = row["band_p10_p90"]["latency_ms"]
    click.echo(printable_lines(
        f"{arch.name} ({arch.kind}) {precision} on {dev.id}: batch {batch}, {input_tokens} positions in"
        + (f", {output_tokens} tokens out" if arch.kind == "encoder_decoder" else "") + "\n"
        f"  latency         {row['latency_ms']:10.2f} ms   (bound: {est.bound}; p10-p90 {low:g}-{high:g} ms)\n"
        f"  items/s         {row['items_per_s']:10.1f}\n"
        f"  memory          {row['memory_gb']:10.2f} GB ({'fits' if est.fits else 'DOES NOT FIT'})"))


def _print_estimate(row: dict[str, Any]) -> None:
    lines = [
        f"{row['model']} {row['precision']} (KV {row['kv_precision']}) on {row['device']}: tp={row['tp']} "
        f"pp={row['pp']} batch={row['batch']} ({row['devices']} devices), {row['input_tokens']} in / "
        f"{row['output_tokens']} out, engine {row['engine']}",
        f"  TTFT            {row['ttft_ms']:10.2f} ms   (prefill bound: {row['bound']['prefill']}; whole batch "
        f"{row['prefill_batch_ms']:.1f} ms)",
        f"  TBT             {row['tbt_ms']:10.2f} ms   (decode bound: {row['bound']['decode']}; step = "
        f"{row['step_ms_base']:.3f} + {row['step_ms_per_seq']:.4f} x batch ms)",
        f"  tokens/s        {row['tokens_per_s']:10.1f}      per device {row['tokens_per_s_per_device']:.1f}",
        f"  requests/s      {row['requests_per_s']:10.3f}      per replica",
        f"  memory          {row['memory_gb_per_device']:10.1f} GB of {row['memory_capacity_gb_per_device']:.1f} GB "
        f"usable per device ({'fits' if row['fits'] else 'DOES NOT FIT'})",
    ]
    b = row["band_p10_p90"]
    lines.append(f"  p10-p90 band    TTFT {b['ttft_ms'][0]:g}-{b['ttft_ms'][1]:g} ms, TBT {b['tbt_ms'][0]:g}-"
                 f"{b['tbt_ms'][1]:g} ms, {b['tokens_per_s'][0]:g}-{b['tokens_per_s'][1]:g} tokens/s "
                 "(held-out error of published measurements)")
    if row["usd_per_million_tokens"] is not None:
        lines.append(f"  cost            {row['usd_per_million_tokens']:10.3f} $/1M output tokens "
                     f"({row['pricing']}, {row['usd_per_device_hour']:.3f} $/device-hour)")
    else:
        lines.append(f"  cost            no {row['pricing']} price for {row['device']}")
    if row["compute_precision"] != row["precision"]:
        lines.append(f"  note: {row['device']} has no {row['precision']} peak; GEMMs run at {row['compute_precision']}")
    if row["missed"]:
        lines.append("  targets missed: " + "; ".join(row["missed"]))
    click.echo(printable_lines("\n".join(lines)))


# ------------------------------------------------------------------------------------------------ calibrate
@click.command("calibrate")
@click.argument("measurements", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Overlay YAML to write (use it with --hwdb-extra).")
@click.option("--split", type=click.Choice(["all", "train"]), default="all", show_default=True,
              help="Fit on every record, or only on records marked split: train (the rest are reported).")
@hwdb_options
@_user_errors
def calibrate(measurements: str, output: str, split: str, hwdb: str, hwdb_extra: tuple[str, ...]) -> None:
    """Fit per-device efficiency factors to measured latencies/throughputs; write an hwdb overlay."""
    from hetc.model.calibrate import fit, load_measurements, write_overlay
    db = _load(hwdb, hwdb_extra)
    records = load_measurements(measurements, db)
    result = fit(records, db, train_only=(split == "train"))
    write_overlay(result, output, measurements)
    click.echo(printable_lines(result.summary()))
