"""End to end: `hetc compile`, `validate`, `opt` on the bundled examples; dumps, exit codes, round trips."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import system_tool
from xdsl.parser import Parser

from hetc.cli import main
from hetc.pipeline import DEFAULT_PIPELINE, make_context, print_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
PASSES = DEFAULT_PIPELINE.split(",")


def run(args, capsys):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Every example compiled once (shared by the tests below), with the IR after every stage in ir/."""
    from hetc.compiler import CompileOptions, compile_spec, write

    out = {}
    base = tmp_path_factory.mktemp("bundles")
    for spec in EXAMPLES:
        result = compile_spec(str(spec), CompileOptions(dump_ir=("all",)))
        write(result, base / spec.stem)
        out[spec.stem] = (result, base / spec.stem)
    return out


def test_there_are_six_examples():
    assert {p.stem for p in EXAMPLES} == {"voice-agent", "rag-assistant", "supervisor", "coding-agent", "moe-agent",
                                          "guarded-chat"}


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_compiles_into_a_bundle(spec, bundles):
    result, path = bundles[spec.stem]
    manifest = json.loads((path / "manifest.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    assert listed == on_disk
    assert {"plan.json", "ir/00-parsed.mlir", "ir/final.generic.mlir"} <= listed
    assert all(f"ir/{i + 1:02d}-{name}.mlir" in listed for i, name in enumerate(PASSES))
    plan = json.loads((path / "plan.json").read_text())
    assert plan["stages"] and plan["tco"]["usd_per_hour"] > 0
    assert all(p["meets"] for p in plan["paths"])


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_ir_round_trips_after_every_stage(spec, bundles):
    _, path = bundles[spec.stem]
    for dump in sorted((path / "ir").glob("0*.mlir")):
        text = dump.read_text()
        module = Parser(make_context(), text, str(dump)).parse_module()
        module.verify()
        assert print_module(module) == text, dump.name
        generic = print_module(module, generic=True)
        assert print_module(Parser(make_context(), generic).parse_module()) == text, dump.name


def _mlir_opt() -> str:
    return system_tool("mlir-opt")


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_upstream_mlir_parses_the_generic_form(spec, bundles):
    _, path = bundles[spec.stem]
    for name in ("00-parsed.mlir", "final.generic.mlir"):
        source = path / "ir" / name
        if not name.startswith("final"):  # the custom dumps are xDSL syntax: print them generically first
            module = Parser(make_context(), source.read_text()).parse_module()
            source = path / f"{name}.generic"
            source.write_text(print_module(module, generic=True))
        done = subprocess.run([_mlir_opt(), "--allow-unregistered-dialect", str(source)], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
        assert '"agent.graph"' in done.stdout or "agent.graph" in done.stdout
        if name.startswith("final"):
            assert "task.decode" in done.stdout or "task.encoder" in done.stdout


def test_generic_form_keeps_yaml_locations(bundles):
    _, path = bundles["voice-agent"]
    text = (path / "ir" / "final.generic.mlir").read_text()
    assert 'loc("' in text and "voice-agent.yaml" in text


def test_dump_ir_all_prints_every_pass(tmp_path, capsys):
    code, out, err = run(["compile", ROOT / "examples/voice-agent.yaml", "-o", tmp_path / "b", "--dump-ir=all",
                          "--dump-ir-dir", tmp_path / "dumps"], capsys)
    assert code == 0, err
    headers = [line for line in out.splitlines() if line.startswith("// -----// IR after")]
    assert [h.split()[4] for h in headers] == ["parsed", *PASSES]
    dumps = sorted(p.stem for p in (tmp_path / "dumps").iterdir() if p.name != ".hetc-manifest")
    assert dumps == sorted(["parsed", *PASSES])


def test_dump_ir_lands_in_the_bundle_numbered_by_stage(tmp_path, capsys):
    code, out, err = run(["compile", ROOT / "examples/voice-agent.yaml", "-o", tmp_path / "b", "--dump-ir",
                          "decompose-llm", "--dump-ir", "parsed"], capsys)
    assert code == 0, err
    ir = sorted(p.name for p in (tmp_path / "b" / "ir").iterdir())
    assert ir == ["00-parsed.mlir", f"{PASSES.index('decompose-llm') + 1:02d}-decompose-llm.mlir",
                  "final.generic.mlir"]
    assert out.count("IR after") == 2


def test_dump_ir_single_pass_generic(tmp_path, capsys):
    code, out, _ = run(["compile", ROOT / "examples/rag-assistant.yaml", "-o", tmp_path / "b",
                        "--dump-ir", "decompose-tools", "--generic"], capsys)
    assert code == 0
    assert out.count("IR after") == 1 and '"task.vector_search"' in out


def test_custom_pipeline_and_opt(tmp_path, capsys):
    code, _, err = run(["compile", ROOT / "examples/voice-agent.yaml", "-o", tmp_path / "b", "-q",
                        "--passes", "inline-agents,decompose-llm"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "b" / "ir").iterdir()) == ["final.generic.mlir"]  # no dumps unasked
    ir = tmp_path / "b" / "ir" / "final.generic.mlir"
    code, out, err = run(["opt", ir, "-p", "decompose-tools,decompose-nodes,place{solver=heuristic}"], capsys)
    assert code == 0, err
    assert "#task.device<" in out and "agent.tool" not in out


def test_bad_pipeline_and_bad_ir_are_user_errors(tmp_path, capsys):
    code, _, err = run(["compile", ROOT / "examples/voice-agent.yaml", "-o", tmp_path / "b", "--passes", "nope"],
                       capsys)
    assert code == 2 and "Unrecognized passes" in err and "Traceback" not in err
    bad = tmp_path / "bad.mlir"
    bad.write_text('agent.graph @g {\n  %0 = "agent.input"() : () -> !agent.nosuch\n}\n')
    code, _, err = run(["opt", bad], capsys)
    assert code == 2 and re.match(rf"{re.escape(str(bad))}:\d+:\d+: error: 'agent.nosuch' is not registered", err)
    assert "Traceback" not in err


def test_ir_verifier_error_points_at_the_yaml(tmp_path, capsys):
    ir = tmp_path / "g.mlir"
    ir.write_text('agent.graph @g {\n  %0 = agent.input @q() {tokens = 1 : i64} : () -> !agent.text loc("spec.yaml":7:3)\n'
                  '} loc("spec.yaml":1:1)\n')
    code, _, err = run(["opt", ir], capsys)
    assert code == 2
    assert err.startswith("spec.yaml:1:1: error: invalid IR after input: agent.graph @g has no agent.output")


def test_validate_reports_every_error_with_location(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text((ROOT / "examples/voice-agent.yaml").read_text().replace("tbt_ms:", "tbt_msec:")
                    .replace("kind: output", "kind: outptu"))
    code, _, err = run(["validate", spec], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) >= 2 and all(line.startswith(f"{spec}:") and ": error: " in line for line in lines)
    assert "did you mean 'tbt_ms'" in err
    code, out, _ = run(["validate", ROOT / "examples/voice-agent.yaml", "--json"], capsys)
    assert code == 0 and json.loads(out)["ok"] is True


def test_validate_checks_what_each_node_is_fed(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("hetc: 1\nname: p\ntraffic: {requests_per_s: 1}\nmodels:\n  w: {preset: whisper-large-v3}\n"
                    "nodes:\n  in: {kind: input, produces: text}\n  stt: {kind: speech_to_text, model: w}\n"
                    "  out: {kind: output}\nedges:\n  - in -> stt -> out\n")
    code, _, err = run(["validate", spec], capsys)
    assert code == 2
    assert err.startswith(f"{spec}:8:3: error: ") and "!agent.text is not accepted; expected !agent.audio" in err


def test_infeasible_sla_exits_3_with_a_reason(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    text = (ROOT / "examples/voice-agent.yaml").read_text()
    spec.write_text(text.replace("tbt_ms: 20", "tbt_ms: 1"))
    code, _, err = run(["compile", spec, "-o", tmp_path / "b"], capsys)
    assert code == 3, err
    assert "tbt_ms 1 ms" in err and "best achievable" in err
    assert not (tmp_path / "b").exists()


def test_max_cost_gate(tmp_path, capsys):
    code, _, err = run(["compile", ROOT / "examples/voice-agent.yaml", "-o", tmp_path / "b", "-q",
                        "--max-cost", "0.01"], capsys)
    assert code == 4 and "above --max-cost" in err


def test_json_summary(tmp_path, capsys):
    code, out, _ = run(["compile", ROOT / "examples/voice-agent.yaml", "-o", tmp_path / "b", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["plan"]["name"] == "voice-agent" and data["files"] > 5 and "explain" not in data
    code, out, _ = run(["compile", ROOT / "examples/voice-agent.yaml", "-o", tmp_path / "b", "--json", "--explain"],
                       capsys)
    rows = json.loads(out)["explain"]
    assert code == 0 and {r["op"] for r in rows} >= {"llm.prefill", "llm.decode", "stt", "tts"}


def test_compile_is_deterministic(tmp_path, bundles):
    from hetc.compiler import CompileOptions, compile_spec

    first, _ = bundles["supervisor"]
    again = compile_spec(str(ROOT / "examples/supervisor.yaml"), CompileOptions(dump_ir=("all",)))
    assert again.files == first.files


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_every_bundle_validates_plan_kubernetes_and_ray(spec, bundles):
    import kubernetes_validate
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from hetc.bundle.schema import load_plan

    _, path = bundles[spec.stem]
    plan = load_plan(path / "plan.json")  # raises on any schema violation
    docs = [doc for f in sorted((path / "deploy" / "kubernetes").glob("*.yaml")) if f.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(f.read_text())]
    assert {d["kind"] for d in docs} == {"ConfigMap", "Deployment", "Service"}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    config = yaml.safe_load((path / "deploy" / "ray-serve" / "serve.yaml").read_text())
    deployments = ServeDeploySchema.model_validate(config).applications[0].deployments
    assert len(deployments) == sum(s["kind"] not in ("input", "output", "kv_transfer") for s in plan["stages"])
    assert (path / "report.html").read_text().startswith("<!DOCTYPE html>")
