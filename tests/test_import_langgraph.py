"""`hetc import langgraph`: real LangGraph graphs (tests/data/langgraph/graphs.py, fake chat models, no network)
become specs that validate and compile, with the graph's shape; a trace of runs sets the numbers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from hetc.cli import main
from hetc.compiler import CompileOptions
from hetc.errors import HetcError
from hetc.importers.langgraph import import_graph
from hetc.importers.lg_record import TraceRecorder

DATA = Path(__file__).parent / "data" / "langgraph"
DOC = Path(__file__).parent.parent / "docs" / "import.md"
sys.path.insert(0, str(DATA))

import graphs  # noqa: E402  (the test graphs, found on the path like a user's module)

GRAPHS = ["react", "supervisor", "plan_execute", "map_reduce", "with_subgraph"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def spec_of(imported) -> dict:
    return yaml.safe_load(imported.text)


def expected_shape(compiled) -> tuple[int, int, dict]:
    """Nodes and edges the spec must have at this level, from LangGraph's own drawing: START/END kept, a
    ToolNode counted once per tool it lists (edges touching it repeated per tool); subgraphs by name."""
    drawn = compiled.get_graph()
    width = {name: len(node.metadata["__tools"]) if node.metadata and "__tools" in node.metadata else 1
             for name, node in drawn.nodes.items()}
    edges = sum(width[e.source] * width[e.target] for e in drawn.edges)
    return sum(width.values()), edges, dict(compiled.get_subgraphs())


def assert_shape(compiled, graph: dict) -> int:
    """Checks every level against LangGraph; returns how many task nodes (not input, output or agent) it has
    in all, to compare with LangGraph's xray drawing."""
    nodes, edges, subgraphs = expected_shape(compiled)
    assert len(graph["nodes"]) == nodes
    edge_count = sum(len(e.split(" -> ")) - 1 if isinstance(e, str) else 1 for e in graph["edges"])
    assert edge_count == edges
    tasks = 0
    for node_id, node in graph["nodes"].items():
        if node["kind"] == "agent":
            tasks += assert_shape(subgraphs[node_id], node["graph"])
        elif node["kind"] not in ("input", "output"):
            tasks += 1
    assert set(subgraphs) == {k for k, v in graph["nodes"].items() if v["kind"] == "agent"}
    return tasks


def xray_tasks(compiled) -> int:
    """Task nodes of LangGraph's get_graph(xray=True) (every subgraph inlined under a `name:` prefix, its START
    and END kept or trimmed), ToolNodes counted per tool."""
    drawn = compiled.get_graph(xray=True)
    return sum(len(n.metadata["__tools"]) if n.metadata and "__tools" in n.metadata else 1
               for name, n in drawn.nodes.items() if name.rsplit(":", 1)[-1] not in ("__start__", "__end__"))


@pytest.mark.parametrize("name", GRAPHS)
def test_each_graph_imports_validates_and_compiles_with_langgraphs_shape(name):
    compiled = getattr(graphs, name)
    imported = import_graph(compiled, name=name, source=f"graphs:{name}")
    data = spec_of(imported)
    tasks = assert_shape(compiled, data)
    assert tasks == xray_tasks(compiled)
    spec = imported.load()  # what `hetc validate` reads
    assert spec.name == name
    result = imported.compile(CompileOptions(verify_code=False))
    assert result.plan["stages"], "the compiled plan has stages to deploy"


def test_react_agent_kinds_models_branches_and_loop_bounds():
    data = spec_of(import_graph(graphs.react))
    nodes = data["nodes"]
    assert nodes["start"]["kind"] == "input" and nodes["end"]["kind"] == "output"
    assert nodes["agent"] == {"kind": "llm", "model": "llama-3-70b", "input_tokens": 512, "output_tokens": 256}
    assert data["models"] == {"llama-3-70b": {"preset": "llama-3-70b"}}  # from Meta-Llama-3-70B-Instruct
    assert nodes["web_search"]["kind"] == nodes["calculator"]["kind"] == "tool"
    edges = {next(iter(e)) if isinstance(e, dict) else e: (next(iter(e.values())) if isinstance(e, dict) else {})
             for e in data["edges"]}
    # the router chooses between the ToolNode (split between its two tools) and END: uniform
    assert edges["agent -> web_search"] == {"probability": 0.25}
    assert edges["agent -> calculator"] == {"probability": 0.25}
    assert edges["agent -> end"] == {"probability": 0.5}
    # two-node loops within LangGraph's recursion limit (one superstep per node)
    limit = _langgraph_default_limit()  # the prebuilt agent sets none
    assert edges["web_search -> agent"] == {"max_iterations": min(10_000, limit // 2 - 1)}


def _langgraph_default_limit() -> int:
    from langgraph._internal._config import DEFAULT_RECURSION_LIMIT

    return int(DEFAULT_RECURSION_LIMIT)


def test_configured_recursion_limit_bounds_the_retry_loop_and_retriever_becomes_lookup():
    data = spec_of(import_graph(graphs.plan_execute))
    assert {"check -> plan": {"probability": 0.5, "max_iterations": 30 // 3 - 1}} in data["edges"]
    assert data["nodes"]["retrieve"]["kind"] == "memory_lookup"
    assert data["nodes"]["check"]["kind"] == "compute"
    assert data["models"] == {"llama-3-8b": {"preset": "llama-3-8b"}}  # meta-llama/Llama-3.1-8B-Instruct


def test_supervisor_sub_agents_and_placeholder_model_listed_as_todo():
    imported = import_graph(graphs.supervisor)
    data = spec_of(imported)
    assert data["nodes"]["researcher"]["kind"] == data["nodes"]["analyst"]["kind"] == "agent"
    assert data["nodes"]["researcher"]["graph"]["nodes"]["agent"]["model"] == "llama-3-8b"  # llama3:8b
    # gpt-4o-mini has no preset: a placeholder stands in, flagged in the YAML and in the TODO list
    assert data["models"]["gpt-4o-mini"] == {"preset": "llama-3-70b"}
    assert any(t.startswith("models.gpt-4o-mini:") for t in imported.todos)
    assert "gpt-4o-mini: {preset: llama-3-70b}  # TODO" in imported.text
    assert {"supervisor -> analyst": {"probability": 0.333333}} in data["edges"]


def test_names_of_one_architecture_share_a_model_and_observed_context_beyond_it_is_raised(tmp_path):
    from langgraph.graph import END, START, MessagesState, StateGraph

    first, second = graphs.chat("meta-llama/Llama-3.1-8B-Instruct"), graphs.chat("llama3:8b")
    builder = StateGraph(MessagesState)
    builder.add_node("draft", lambda state: {"messages": [first.invoke(state["messages"])]})
    builder.add_node("polish", lambda state: {"messages": [second.invoke(state["messages"])]})
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "polish")
    builder.add_edge("polish", END)
    graph = builder.compile()
    data = spec_of(import_graph(graph))
    assert data["models"] == {"llama-3-8b": {"preset": "llama-3-8b"}}
    assert data["nodes"]["draft"]["model"] == data["nodes"]["polish"]["model"] == "llama-3-8b"
    # a trace showing 9,000 + 500 tokens per call: more than Llama 3's 8,192-token context
    runs = [{"id": "g", "name": "LangGraph", "start_time": 0, "end_time": 2},
            {"id": "d", "parent_run_id": "g", "name": "draft", "start_time": 0, "end_time": 1},
            {"id": "dm", "parent_run_id": "d", "name": "m", "run_type": "llm", "start_time": 0, "end_time": 1,
             "prompt_tokens": 9000, "completion_tokens": 500},
            {"id": "p", "parent_run_id": "g", "name": "polish", "start_time": 1, "end_time": 2}]
    trace = tmp_path / "runs.json"
    trace.write_text(json.dumps(runs))
    imported = import_graph(graph, trace=trace)
    assert spec_of(imported)["models"] == {"llama-3-8b": {"preset": "llama-3-8b", "overrides": {"max_context": 10240}}}
    assert any(t.startswith("models.llama-3-8b: max_context raised to 10240") for t in imported.todos)
    imported.load()


def test_send_fan_out_is_marked_and_listed():
    imported = import_graph(graphs.map_reduce)
    assert "generate_topics -> generate_joke  # Send fan-out" in imported.text
    assert any("generate_topics fans out with Send" in t for t in imported.todos)
    assert spec_of(imported)["models"] == {"mixtral-8x7b": {"preset": "mixtral-8x7b"}}


def test_builder_is_compiled_and_output_is_deterministic():
    first = import_graph(graphs.plan_execute_builder).text
    assert first == import_graph(graphs.plan_execute_builder).text
    assert first == import_graph(graphs._pe.compile()).text


def test_hostile_node_names_become_safe_ids_and_cannot_break_the_yaml():
    imported = import_graph(graphs.hostile)
    assert imported.text.isascii()
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", imported.text)
    data = spec_of(imported)
    ids = [i for i in data["nodes"] if i not in ("start", "end")]
    assert len(ids) == len(graphs.HOSTILE_NAMES) + len(graphs.HOSTILE_TOOLS)
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", i) and len(i) <= 48 for i in ids)
    # the original names survive, escaped, in the descriptions
    assert data["nodes"]["a_b_-_c"]["description"] == "LangGraph node a= b\\x0a- c"
    assert data["nodes"]["a_b_c"] == {"kind": "tool", "tool": "a_b_c", "latency_ms": 500, "latency_p99_ms": 2000,
                                      "description": "tool a:b, {c} of LangGraph ToolNode tools"}
    imported.load()


def test_cli_writes_spec_lists_todos_and_the_spec_validates(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(DATA)
    out_file = tmp_path / "react.yaml"
    code, out, err = run_cli(["import", "langgraph", "graphs:react", "-o", str(out_file)], capsys)
    assert code == 0, err
    text = out_file.read_text()
    printed = [line.strip()[2:] for line in out.splitlines() if line.startswith("  - ")]
    in_yaml = [line[4:] for line in text.splitlines() if line.startswith("# - ")]
    assert printed == in_yaml and len(printed) >= 6
    assert any("traffic" in t for t in printed) and any("slo" in t for t in printed)
    assert any("hardware" in t for t in printed) and any("input_tokens" in t for t in printed)
    code, out, err = run_cli(["validate", str(out_file)], capsys)
    assert code == 0 and "ok (react: 5 nodes, 6 edges)" in out


@pytest.mark.parametrize("target, expected", [
    ("graphs:undeclared_command", "node 'orphan': no edge reaches it"),
    ("graphs:with_remote_graph", "node 'remote_agent': runs a RemoteGraph"),
    ("graphs:not_a_graph", "expected a compiled LangGraph graph or a StateGraph builder, found a dict"),
    ("graphs:missing", "'graphs' has no attribute 'missing'"),
    ("no_such_module:graph", "cannot import module 'no_such_module'"),
    ("graphs", "expected MODULE:ATTR"),
    ("graphs:react; rm -rf /", "expected MODULE:ATTR"),
])
def test_unsupported_or_bad_targets_exit_2_naming_the_problem(target, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(DATA)
    code, out, err = run_cli(["import", "langgraph", target, "-o", str(tmp_path / "x.yaml")], capsys)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err and not (tmp_path / "x.yaml").exists()


def test_langgraph_failing_to_draw_the_graph_is_a_user_error(monkeypatch):
    graph = graphs._pe.compile()

    def fail(*args, **kwargs):
        raise ValueError("cannot draw\nthis")

    monkeypatch.setattr(graph, "get_graph", fail)
    with pytest.raises(HetcError) as info:
        import_graph(graph, source="graphs:plan_execute")
    assert "LangGraph cannot draw the graph 'LangGraph': ValueError: cannot draw\\x0athis" in str(info.value)
    assert info.value.exit_code == 2


def test_module_that_raises_on_import_is_reported_without_traceback(tmp_path, capsys, monkeypatch):
    (tmp_path / "broken_agent.py").write_text("raise RuntimeError('no API key\\x1b[31m')\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["import", "langgraph", "broken_agent:graph", "-o", "x.yaml"], capsys)
    assert code == 2 and "raised RuntimeError: no API key" in err
    assert "\x1b" not in err and "Traceback" not in err


# ---- traces ----

def _call(tool: str, tokens_in: int, tokens_out: int):
    from langchain_core.messages import AIMessage

    args = {"query": "q"} if tool == "web_search" else {"expression": "1+1"}
    return AIMessage("", tool_calls=[{"name": tool, "args": args, "id": tool}],
                     usage_metadata={"input_tokens": tokens_in, "output_tokens": tokens_out,
                                     "total_tokens": tokens_in + tokens_out})


def _done(tokens_in: int, tokens_out: int):
    from langchain_core.messages import AIMessage

    return AIMessage("done", usage_metadata={"input_tokens": tokens_in, "output_tokens": tokens_out,
                                             "total_tokens": tokens_in + tokens_out})


def _set_tool_latency(doc: dict, tool: str, ms: list[float]) -> None:
    """Tools here answer in microseconds; give the recorded tool runs the latencies of real services."""
    from datetime import datetime, timedelta

    runs = [r for r in doc["runs"] if r["name"] == tool and r["run_type"] == "tool"]
    assert len(runs) == len(ms)
    for run, latency in zip(runs, ms, strict=True):
        run["end_time"] = (datetime.fromisoformat(run["start_time"]) + timedelta(milliseconds=latency)).isoformat()


def test_trace_of_real_react_runs_sets_probabilities_tokens_latencies_and_loop_bounds(tmp_path):
    from langchain_core.messages import HumanMessage

    # three runs: search then answer; answer at once; search, search again, then answer
    model = graphs.FakeChat(responses=[_call("web_search", 1000, 100), _done(1500, 200), _done(800, 50),
                                       _call("web_search", 1000, 100), _call("web_search", 1200, 60),
                                       _done(1600, 300)])
    agent = graphs.react_agent(model, [graphs.web_search, graphs.calculator])
    recorder = TraceRecorder()
    for _ in range(3):
        agent.invoke({"messages": [HumanMessage("hi")]}, {"callbacks": [recorder]})
    doc = recorder.export()
    _set_tool_latency(doc, "web_search", [300.0, 500.0, 400.0])
    trace = tmp_path / "runs.json"
    trace.write_text(json.dumps(doc))

    before = spec_of(import_graph(agent))
    after = spec_of(import_graph(agent, trace=trace))
    assert before["nodes"]["agent"]["input_tokens"] == 512
    # 6 model calls: mean input (1000+1500+800+1000+1200+1600)/6 = 1183.3, output 810/6 = 135
    assert after["nodes"]["agent"]["input_tokens"] == 1183 and after["nodes"]["agent"]["output_tokens"] == 135
    assert after["nodes"]["web_search"]["latency_ms"] == 400.0
    assert after["nodes"]["web_search"]["latency_p99_ms"] == 500.0
    edges = {next(iter(e)): next(iter(e.values())) for e in after["edges"] if isinstance(e, dict)}
    # of 6 agent turns, 3 called web_search, none the calculator (kept possible, barely), 3 answered
    assert edges["agent -> web_search"]["probability"] == pytest.approx(0.5, abs=1e-3)
    assert edges["agent -> calculator"]["probability"] == pytest.approx(0.001, abs=1e-5)
    assert edges["agent -> end"]["probability"] == pytest.approx(0.5, abs=1e-3)
    assert edges["web_search -> agent"]["max_iterations"] == 2  # the third run searched twice
    # the never-called tool keeps its defaults and stays on the TODO list
    assert after["nodes"]["calculator"]["latency_ms"] == 500
    imported = import_graph(agent, trace=trace)
    assert not any(t.startswith("nodes.agent:") for t in imported.todos)
    assert any(t.startswith("nodes.calculator:") for t in imported.todos)
    imported.load()


def test_opentelemetry_style_trace_of_the_retry_loop(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(DATA)
    out_file = tmp_path / "pe.yaml"
    code, _, err = run_cli(["import", "langgraph", "graphs:plan_execute", "--from-trace", "plan_execute_trace.json",
                            "-o", str(out_file)], capsys)
    assert code == 0, err
    data = yaml.safe_load(out_file.read_text())
    # runs: one pass; four passes (three retries). check ran 5 times, went back to plan 3 times
    assert {"check -> plan": {"probability": 0.6, "max_iterations": 3}} in data["edges"]
    assert {"check -> end": {"probability": 0.4}} in data["edges"]
    assert data["nodes"]["plan"]["input_tokens"] == (600 + 600 + 800 + 1000 + 1000) // 5
    assert data["nodes"]["plan"]["output_tokens"] == (100 + 100 + 150 + 200 + 250) // 5
    assert data["nodes"]["check"]["cpu_ms"] == 4
    code, _, err = run_cli(["validate", str(out_file)], capsys)
    assert code == 0, err


def test_trace_for_a_subgraph_and_a_fan_out(tmp_path):
    runs = [{"id": "root", "name": "LangGraph", "start_time": 0, "end_time": 9},
            {"id": "t", "parent_run_id": "root", "name": "generate_topics", "start_time": 0, "end_time": 0.002}]
    for i in range(4):
        runs.append({"id": f"j{i}", "parent_run_id": "root", "name": "generate_joke", "start_time": 1 + i * 0.01,
                     "end_time": 2, "metadata": {}})
        runs.append({"id": f"j{i}-llm", "parent_run_id": f"j{i}", "name": "FakeChat", "run_type": "llm",
                     "start_time": 1, "end_time": 2, "input_tokens": 100, "output_tokens": 40 + 20 * i})
    runs.append({"id": "b", "parent_run_id": "root", "name": "best_joke", "start_time": 3, "end_time": 3.001})
    trace = tmp_path / "mr.json"
    trace.write_text(json.dumps(runs))
    imported = import_graph(graphs.map_reduce, trace=trace)
    assert "(observed 4.00 calls per run of the source)" in imported.text
    assert spec_of(imported)["nodes"]["generate_joke"]["output_tokens"] == (40 + 60 + 80 + 100) // 4

    sub_runs = [{"id": "root", "name": "LangGraph", "start_time": 0, "end_time": 9},
                {"id": "p", "parent_run_id": "root", "name": "prepare", "start_time": 0, "end_time": 1},
                {"id": "r", "parent_run_id": "root", "name": "research", "start_time": 1, "end_time": 5},
                {"id": "r1", "parent_run_id": "r", "name": "think", "start_time": 1, "end_time": 2},
                {"id": "r1m", "parent_run_id": "r1", "name": "m", "run_type": "llm", "start_time": 1, "end_time": 2,
                 "prompt_tokens": 3000, "completion_tokens": 300},
                {"id": "r2", "parent_run_id": "r", "name": "act", "start_time": 2, "end_time": 3},
                {"id": "r2t", "parent_run_id": "r2", "name": "web_search", "run_type": "tool", "start_time": 2,
                 "end_time": 2.75},
                {"id": "r3", "parent_run_id": "r", "name": "think", "start_time": 3, "end_time": 4},
                {"id": "r3m", "parent_run_id": "r3", "name": "m", "run_type": "llm", "start_time": 3, "end_time": 4,
                 "prompt_tokens": 5000, "completion_tokens": 100},
                {"id": "r4", "parent_run_id": "r", "name": "act", "start_time": 4, "end_time": 4.5},
                {"id": "r4t", "parent_run_id": "r4", "name": "web_search", "run_type": "tool", "start_time": 4,
                 "end_time": 4.25},
                {"id": "r5", "parent_run_id": "r", "name": "think", "start_time": 4.5, "end_time": 5},
                {"id": "r5m", "parent_run_id": "r5", "name": "m", "run_type": "llm", "start_time": 4.5,
                 "end_time": 5, "prompt_tokens": 4000, "completion_tokens": 200},
                {"id": "s", "parent_run_id": "root", "name": "summarise", "start_time": 5, "end_time": 6}]
    trace.write_text(json.dumps({"runs": sub_runs}))
    sub = spec_of(import_graph(graphs.with_subgraph, trace=trace))["nodes"]["research"]["graph"]
    # three model turns inside the subgraph, two searches (750 ms and 250 ms), then the answer
    assert sub["nodes"]["think"]["input_tokens"] == 4000 and sub["nodes"]["think"]["output_tokens"] == 200
    assert sub["nodes"]["web_search"]["latency_ms"] == 500.0
    assert sub["nodes"]["web_search"]["latency_p99_ms"] == 750.0
    assert {"think -> web_search": {"probability": 0.666666}} in sub["edges"]
    assert {"web_search -> think": {"max_iterations": 2}} in sub["edges"]


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not valid JSON"),
    ('{"runs": 3}', "expected a JSON list of runs"),
    ('[{"name": "agent", "start_time": 0, "end_time": 1}]', "run 0: missing 'id'"),
    ('[{"id": "a", "name": "agent", "start_time": "yesterday", "end_time": 1}]', "run 0: 'start_time' must be"),
    ('[{"id": "a", "name": "agent", "start_time": 0, "end_time": 1, "prompt_tokens": -5}]', "non-negative"),
    ('[{"id": "a", "name": "unrelated", "start_time": 0, "end_time": 1}]', "no run in the trace matches"),
])
def test_bad_trace_files_are_user_errors(content, expected, tmp_path):
    trace = tmp_path / "t.json"
    trace.write_text(content)
    with pytest.raises(HetcError) as info:
        import_graph(graphs.react, trace=trace)
    assert expected in str(info.value) and info.value.exit_code == 2


# ---- docs/import.md ----

def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def test_docs_react_example_runs_from_python_code_to_a_compiled_plan(tmp_path, capsys, monkeypatch):
    """Writes the doc's Python files, then runs its shell commands in order, as a reader would; the spec the
    doc shows is the one the first import writes (but for the loop bounds, which follow the installed
    LangGraph's recursion limit)."""
    import runpy

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("react_agent", None)
    for block in _blocks("python"):
        first = block.splitlines()[0]
        if first.startswith("# file: "):
            (tmp_path / first[len("# file: "):].strip()).write_text(block)
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ ")]
    assert any(c.startswith("hetc compile") for c in commands) and any("--from-trace" in c for c in commands)
    shown = [line for line in _blocks("yaml")[0].splitlines() if "recursion" not in line]
    first_import = None
    try:
        for command in commands:
            argv = command.split()
            if argv[0] == "python":
                runpy.run_path(argv[1], run_name="__main__")
                continue
            assert argv[0] == "hetc"
            code, _, err = run_cli(argv[1:], capsys)
            assert code == 0, f"{command}: {err}"
            if argv[1] == "import" and first_import is None:
                first_import = (tmp_path / "react.yaml").read_text()
    finally:
        sys.modules.pop("react_agent", None)
    assert shown == [line for line in first_import.splitlines() if "recursion" not in line]
    plan = json.loads((tmp_path / "bundle" / "plan.json").read_text())
    assert plan["stages"]
    traced = yaml.safe_load((tmp_path / "react.yaml").read_text())
    assert traced["nodes"]["agent"]["input_tokens"] == 990 and traced["nodes"]["agent"]["output_tokens"] == 66
    assert {"agent -> end": {"probability": 0.6}} in traced["edges"]
