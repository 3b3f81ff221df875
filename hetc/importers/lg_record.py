"""Record a trace file (the format hetc.importers.trace reads) from a LangGraph graph's own runs.

    recorder = TraceRecorder()
    graph.invoke(inputs, {"callbacks": [recorder]})   # as many runs as you like
    recorder.write("runs.json")

It is a LangChain callback tracer: it keeps every run LangChain reports (the graph, each node, model and tool
calls) with the fields a LangSmith export has, token usage taken from the model's `usage_metadata`.
"""

from __future__ import annotations

import json
from pathlib import Path

from langchain_core.tracers.base import BaseTracer


class TraceRecorder(BaseTracer):
    def __init__(self) -> None:
        super().__init__()
        self.runs: list = []

    def _start_trace(self, run) -> None:  # every run, root or child, passes here once
        super()._start_trace(run)
        self.runs.append(run)

    def _persist_run(self, run) -> None:  # nothing to send anywhere: runs are kept in memory
        pass

    def export(self) -> dict:
        return {"runs": [_exported(run) for run in self.runs]}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.export(), indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _exported(run) -> dict:
    metadata = (run.extra or {}).get("metadata") or {}
    data = {"id": str(run.id), "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
            "name": run.name, "run_type": run.run_type, "start_time": run.start_time.isoformat(),
            "end_time": (run.end_time or run.start_time).isoformat(),
            "metadata": {k: metadata[k] for k in ("langgraph_step", "langgraph_node") if k in metadata}}
    if run.run_type == "llm":
        usage = _usage(run.outputs or {})
        if usage:
            data["prompt_tokens"] = int(usage.get("input_tokens", 0))
            data["completion_tokens"] = int(usage.get("output_tokens", 0))
    return data


def _usage(outputs: dict) -> dict:
    """Token usage of a model call: summed over its generations' usage_metadata."""
    total: dict = {}
    for generation in (g for batch in outputs.get("generations") or [] for g in batch):
        message = generation.get("message") if isinstance(generation, dict) else getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if usage is None and isinstance(message, dict):
            usage = (message.get("kwargs") or message).get("usage_metadata")
        for key in ("input_tokens", "output_tokens"):
            if usage and isinstance(usage.get(key), int):
                total[key] = total.get(key, 0) + usage[key]
    return total
