"""Test fixtures for the CPU help-desk example: its bundle, its search tool server and bindings pointing at
the local servers (the LLM stand-in, the tool server), all on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cpu-helpdesk"


def compile_example(out: Path) -> Path:
    from hetc.compiler import CompileOptions, compile_spec, write

    write(compile_spec(str(EXAMPLE / "agent.yaml"), CompileOptions()), out)
    return out


def start_tool_server():
    """The example's search tool (examples/cpu-helpdesk/tool_server.py) on a free loopback port."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    spec = importlib.util.spec_from_file_location("helpdesk_tool_server", EXAMPLE / "tool_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.serve(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_bindings(path: Path, llm_url: str, tool_port: int, **node_changes: dict) -> Path:
    """The example's bindings with the endpoints of the local servers (paths made absolute)."""
    bindings = yaml.safe_load((EXAMPLE / "bindings.yaml").read_text())
    bindings["python_path"] = [str(EXAMPLE)]
    bindings["models"]["chat"]["endpoint"] = llm_url
    bindings["nodes"]["search"]["http"] = f"http://127.0.0.1:{tool_port}/search"
    for key in ("vectors", "documents"):
        bindings["nodes"]["retrieve"][key] = str(EXAMPLE / bindings["nodes"]["retrieve"][key])
    for node, change in node_changes.items():
        bindings["nodes"][node] = change
    path.write_text(yaml.safe_dump(bindings))
    return path
