"""What `validate` accepts, `compile` does not reject as a bad spec (issue 12): an encoder_decoder model
without encoder_frames (documented default 0) passed validate and failed compile with no location."""

from __future__ import annotations

import json
from pathlib import Path

from test_spec_fields import SPEC

from hetc.compiler import CompileOptions, compile_spec, load
from hetc.errors import EXIT_USER, HetcError
from hetc.pipeline import verify
from hetc.spec.fields import NODE_FIELDS
from hetc.spec.frontend import spec_to_module

# ed: an encoder_decoder arch without encoder_frames
REQUIRED = {"llm": ", model: chat", "speech_to_text": ", model: ed", "text_to_speech": ", model: tts",
            "embedding": ", model: emb", "model": ", model: chat", "kv_cache": ", model: chat",
            "tool": ", latency_ms: 10", "memory_lookup": ", n_vectors: 10, embed_model: emb",
            "memory_store": ", embed_model: emb", "compute": ", cpu_ms: 1"}


def validate_then_compile(path: Path) -> None:
    try:
        _, spec = load(str(path), CompileOptions())
        verify(spec_to_module(spec), "reading the spec")
    except HetcError:
        return  # rejected by validate: nothing to compare
    try:
        compile_spec(str(path), CompileOptions(codegen=False))
    except HetcError as exc:
        assert exc.exit_code != EXIT_USER, f"validate accepted what compile rejects: {exc}"


def spec_file(tmp_path: Path, kind: str, extra: str = "") -> Path:
    path = tmp_path / "spec.yaml"
    produces = "audio" if kind == "speech_to_text" else "text"
    path.write_text(SPEC.format(produces=produces, kind=kind, fields=REQUIRED[kind] + extra))
    return path


def test_encoder_decoder_without_encoder_frames_compiles(tmp_path: Path):
    result = compile_spec(str(spec_file(tmp_path, "speech_to_text")), CompileOptions(codegen=False))
    assert any(stage["node"] == "n" for stage in result.plan["stages"])


def _edge_values(rule) -> list[str]:
    if rule.type in ("int", "number"):
        return ["1", *(["0"] if rule.allow_zero else []), *([f"{rule.limit.maximum:.0f}"] if rule.limit else [])]
    if rule.type == "choice":
        return list(rule.choices)
    if rule.type == "model":
        return ["chat", "emb", "stt", "tts", "ed"]
    return []


EDGE_CASES = [(kind, rule.name, value) for kind, rules in NODE_FIELDS.items() if kind in REQUIRED
              for rule in rules for value in _edge_values(rule)]


def test_edge_values_validate_accepts_compile_accepts(tmp_path: Path):
    """Every edge value of every node field (all of them: sampling a dozen missed a long text-to-speech job whose
    Kubernetes export failed the compile)."""
    for kind, field, value in EDGE_CASES:
        validate_then_compile(spec_file(tmp_path, kind, f", {field}: {value}"))


def test_a_speech_stage_without_a_known_server_image_still_compiles(tmp_path: Path):
    """A long text-to-speech job on the default pool lands on AMD, where hetc knows no speech server image: the
    compile failed in its Kubernetes export (exit 2) on a spec validate accepts. The plan stands; the bundle says
    why it has no Kubernetes manifests and how to export them with an image."""
    from click.testing import CliRunner

    from hetc.cli import cli

    spec = spec_file(tmp_path, "text_to_speech", ", audio_seconds: 86400")
    bundle = tmp_path / "bundle"
    result = CliRunner().invoke(cli, ["compile", str(spec), "-o", str(bundle), "-q"])
    assert result.exit_code == 0, result.output
    stage = next(s for s in json.loads((bundle / "plan.json").read_text())["stages"] if s["node"] == "n")
    assert stage["vendor"] == "amd"  # the case this test is about: no Kokoro-FastAPI image for AMD
    assert sorted(p.name for p in (bundle / "deploy" / "kubernetes").iterdir()) == ["NOT-EXPORTED.txt"]
    assert "--image speech=IMAGE" in (bundle / "deploy" / "kubernetes" / "NOT-EXPORTED.txt").read_text()
    assert "warning: deploy/kubernetes/NOT-EXPORTED.txt" in result.output  # stderr, mixed in by CliRunner
    assert (bundle / "deploy" / "ray-serve" / "serve.yaml").is_file()
    exported = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", "kubernetes", "-o", str(tmp_path / "k"),
                                        "--image", "speech=registry.internal/tts:1"])
    assert exported.exit_code == 0, exported.output
    assert "registry.internal/tts:1" in "".join(p.read_text() for p in (tmp_path / "k").glob("*.yaml"))
