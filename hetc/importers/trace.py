"""Read a trace of real runs (a LangSmith run export or OpenTelemetry-style spans, as JSON).

The format (docs/import.md "Trace files") is a JSON object with a `runs` list, or the list itself. Each run:

- `id` (string, required; alias `span_id`), `parent_run_id` (aliases `parent_id`, `parent_span_id`; absent or
  null for the root run of one graph invocation);
- `name`: the LangGraph node name for a node's run, the tool's name for a tool call;
- `run_type`: `chain`, `llm`, `tool`, `retriever` (optional; `tool` marks tool calls);
- `start_time`, `end_time`: ISO 8601 strings or seconds since the epoch (or `start_time_unix_nano`,
  `end_time_unix_nano`);
- token usage of model calls: `prompt_tokens`/`completion_tokens` (LangSmith), `input_tokens`/`output_tokens`,
  or the OpenTelemetry GenAI attributes `gen_ai.usage.input_tokens`/`gen_ai.usage.output_tokens` inside
  `attributes`;
- `metadata.langgraph_step` (optional; LangSmith records it): the superstep, so parallel runs are told apart.

Anything else in a run is ignored. A run whose parent is not in the file counts as a root.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hetc.errors import HetcError, Loc
from hetc.json_source import loads_json
from hetc.userfiles import UnreadableFile, read_regular_file

MAX_TRACE_BYTES = 256 * 1024 * 1024
_ID_KEYS = ("id", "span_id")
_PARENT_KEYS = ("parent_run_id", "parent_id", "parent_span_id")
_INPUT_TOKEN_KEYS = ("prompt_tokens", "input_tokens", "gen_ai.usage.input_tokens")
_OUTPUT_TOKEN_KEYS = ("completion_tokens", "output_tokens", "gen_ai.usage.output_tokens")


@dataclass
class Run:
    id: str
    name: str
    run_type: str
    start: float  # seconds
    end: float
    input_tokens: int
    output_tokens: int
    step: int | None
    order: int  # position in the file (ties)
    children: list[Run] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max(0.0, (self.end - self.start) * 1000.0)

    def descendants(self):
        """Every run below this one, depth first, without recursion (a parent chain can be 100,000 runs long)."""
        pending = list(reversed(self.children))
        while pending:
            child = pending.pop()
            yield child
            pending.extend(reversed(child.children))


def read_trace(path: str | Path) -> list[Run]:
    """The root runs of a trace file (one per graph invocation), children sorted by start time."""
    display = str(path)
    try:
        data = read_regular_file(path, MAX_TRACE_BYTES, "traces")
    except UnreadableFile as exc:
        raise HetcError(f"cannot read the trace: {exc}", Loc(display)) from None
    try:
        doc = loads_json(data.decode("utf-8"), display)  # nesting bounded: a 100,000-deep trace is exit 2
    except UnicodeDecodeError:
        raise HetcError("the trace is not UTF-8 text", Loc(display)) from None
    items = doc.get("runs") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise HetcError("expected a JSON list of runs or an object with a 'runs' list", Loc(display))
    runs: dict[str, Run] = {}
    parents: dict[str, str | None] = {}
    for index, item in enumerate(items):
        run, parent = _run(item, index, display)
        if run.id in runs:
            raise HetcError(f"run {index}: duplicate id", Loc(display))
        runs[run.id] = run
        parents[run.id] = parent
    roots = []
    looped = _on_cycles(parents)
    for run_id, run in runs.items():
        parent = parents[run_id]
        if parent is not None and parent in runs and run_id not in looped:
            runs[parent].children.append(run)
        else:
            roots.append(run)
    for run in runs.values():
        run.children.sort(key=_order)
    return sorted(roots, key=_order)


def _order(run: Run) -> tuple:
    return (run.start, run.order)


def _on_cycles(parents: dict[str, str | None]) -> set[str]:
    """The runs on a cycle of the file's parent links (they become roots), found in one pass over the links:
    a chain of 100,000 runs costs 100,000 steps, not 100,000 walks up the chain."""
    done: set[str] = set()
    looped: set[str] = set()
    for start in parents:
        path: dict[str, int] = {}  # run -> position on this walk
        current: str | None = start
        while current is not None and current in parents and current not in done and current not in path:
            path[current] = len(path)
            current = parents[current]
        if current in path:  # the walk came back to itself: the tail from there is a cycle
            looped.update(list(path)[path[current]:])
        done.update(path)
    return looped


def _run(item, index: int, file: str) -> tuple[Run, str | None]:
    if not isinstance(item, dict):
        raise HetcError(f"run {index}: expected a JSON object", Loc(file))
    attributes = item.get("attributes") if isinstance(item.get("attributes"), dict) else {}
    run_id = _first(item, _ID_KEYS)
    if not isinstance(run_id, (str, int)) or isinstance(run_id, bool) or str(run_id) == "":
        raise HetcError(f"run {index}: missing 'id' (a string)", Loc(file))
    parent = _first(item, _PARENT_KEYS)
    name = item.get("name")
    if not isinstance(name, str):
        raise HetcError(f"run {index}: missing 'name' (a string)", Loc(file))
    start = _time(item, "start", index, file)
    end = _time(item, "end", index, file)
    metadata = item.get("metadata") or (item.get("extra") or {}).get("metadata") or {}
    step = metadata.get("langgraph_step") if isinstance(metadata, dict) else None
    run = Run(
        id=str(run_id), name=name, run_type=str(item.get("run_type") or ""), start=start, end=max(start, end),
        input_tokens=_tokens({**attributes, **item}, _INPUT_TOKEN_KEYS, index, file),
        output_tokens=_tokens({**attributes, **item}, _OUTPUT_TOKEN_KEYS, index, file),
        step=step if isinstance(step, int) and not isinstance(step, bool) else None, order=index)
    return run, None if parent in (None, "") else str(parent)


def _first(item: dict, keys: tuple[str, ...]):
    for key in keys:
        if item.get(key) is not None:
            return item[key]
    return None


def _tokens(item: dict, keys: tuple[str, ...], index: int, file: str) -> int:
    value = _first(item, keys)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise HetcError(f"run {index}: '{keys[0]}' must be a non-negative number of tokens", Loc(file))
    return int(value)


def _time(item: dict, which: str, index: int, file: str) -> float:
    nano = item.get(f"{which}_time_unix_nano")
    if isinstance(nano, int) and not isinstance(nano, bool):
        return nano / 1e9
    value = item.get(f"{which}_time")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:  # LangSmith writes UTC without an offset
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    raise HetcError(f"run {index}: '{which}_time' must be an ISO 8601 time or seconds since the epoch", Loc(file))
