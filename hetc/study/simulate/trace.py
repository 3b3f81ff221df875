"""Request traces for the simulator: arrival times and per-request token counts, from CSV or JSON Lines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hetc.errors import HetcError, Loc

MAX_TRACE_BYTES = 64 << 20  # 64 MiB: about two million `arrival_s,input_tokens,output_tokens` rows


@dataclass(frozen=True)
class Trace:
    """Arrival times (s) and per-request token counts (0 = use the plan's nominal count)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


def load_trace(path: str | Path) -> Trace:
    """Read a trace: CSV with header `arrival_s[,input_tokens][,output_tokens]`, or JSON Lines with those keys."""
    from hetc.userfiles import UnreadableFile, read_regular_file

    path = Path(path)
    try:
        lines = read_regular_file(path, MAX_TRACE_BYTES, "traces").decode("utf-8").splitlines()
    except UnreadableFile as exc:
        raise HetcError(f"cannot read trace: {exc}", Loc(str(path))) from None
    except UnicodeDecodeError as exc:
        raise HetcError(f"the trace is not UTF-8 text (byte {exc.start})", Loc(str(path))) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        from hetc.json_source import loads_json

        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = loads_json(line, str(path))  # nesting bounded: a 100,000-deep line is exit 2
            except HetcError as exc:  # located on line 1 of the one line: move it to the file's line
                diag = exc.diagnostics[0]
                raise HetcError(diag.message, Loc(str(path), number, diag.loc.col)) from None
            if not isinstance(record, dict):
                raise HetcError("expected an object like {\"arrival_s\": 0.5}", Loc(str(path), number, 1))
            rows.append((number, record))
    else:
        header_at = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")), None)
        if header_at is None:
            raise HetcError("empty trace: expected a header line `arrival_s,input_tokens,output_tokens`",
                            Loc(str(path)))
        columns = [c.strip() for c in lines[header_at].split(",")]
        for number, line in enumerate(lines[header_at + 1:], header_at + 2):
            if not line.strip() or line.startswith("#"):
                continue
            cells = [c.strip() for c in line.split(",")]
            if len(cells) != len(columns):
                raise HetcError(f"expected {len(columns)} comma-separated values ({','.join(columns)}), "
                                f"got {len(cells)}", Loc(str(path), number, 1))
            rows.append((number, {c: v for c, v in zip(columns, cells, strict=True) if v != ""}))
    unknown = sorted({k for _, r in rows for k in r} - {"arrival_s", "input_tokens", "output_tokens"})
    if unknown:
        raise HetcError(f"unknown trace field {unknown[0]!r}: expected arrival_s, input_tokens, output_tokens",
                        Loc(str(path), rows[0][0] if rows else 0, 1))
    if not rows:
        raise HetcError("the trace has no requests", Loc(str(path)))
    arrivals, inputs, outputs = [], [], []
    previous = 0.0
    for number, record in rows:
        arrival = _trace_number(record, "arrival_s", float, path, number, required=True)
        if arrival < previous:
            raise HetcError(f"arrival_s {arrival} is earlier than the previous request's {previous}: "
                            "expected non-decreasing, non-negative times", Loc(str(path), number, 1))
        previous = arrival
        arrivals.append(arrival)
        inputs.append(_trace_number(record, "input_tokens", int, path, number))
        outputs.append(_trace_number(record, "output_tokens", int, path, number))
    return Trace(np.asarray(arrivals, dtype=float), np.asarray(inputs, dtype=np.int64),
                 np.asarray(outputs, dtype=np.int64))


def _trace_number(record: dict[str, Any], key: str, kind: type, path: Path, line: int,
                  required: bool = False) -> Any:
    if key not in record:
        if required:
            raise HetcError(f"missing {key}", Loc(str(path), line, 1))
        return 0
    value = record[key]
    try:
        number = kind(value)
        if kind is int and isinstance(value, str) and not value.strip().isdigit():
            raise ValueError
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and value != int(value)):
            raise ValueError
    except (TypeError, ValueError):
        raise HetcError(f"{key}: expected a {'whole' if kind is int else ''} number, got {value!r}",
                        Loc(str(path), line, 1)) from None
    if not math.isfinite(number) or number < 0 or (kind is int and number == 0):
        raise HetcError(f"{key}: expected a {'positive' if kind is int else 'non-negative'} number, got {value!r}",
                        Loc(str(path), line, 1))
    return number
