"""Every node field docs/spec.md documents is accepted by the loader and reaches the IR: changing its value
changes the module the frontend emits (issue 12: memory_store's `tokens` was dropped, kv_cache defaults
disagreed between the frontend and the loader)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hetc.pipeline import PipelineRun, print_module
from hetc.spec.fields import NODE_FIELDS
from hetc.spec.frontend import spec_to_module
from hetc.spec.loader import load_spec

DOCS = Path(__file__).resolve().parent.parent / "docs" / "spec.md"


def documented_fields() -> list[tuple[str, str]]:
    """(node kind, field) for every row of the node kinds' tables in docs/spec.md."""
    text = DOCS.read_text(encoding="utf-8")
    nodes = text[text.index("## `nodes`"):]
    nodes = nodes[: nodes.index("\n## ", 1)]
    found = []
    for section in re.split(r"\n### ", nodes)[1:]:
        kind = re.match(r"`(\w+)`", section)[1]
        found += [(kind, field) for field in re.findall(r"^\| `(\w+)` \|", section, re.M)]
    return found


SPEC = """hetc: 1
name: fields
traffic: {{requests_per_s: 1}}
models:
  chat: {{preset: llama-3-8b}}
  chat2: {{preset: llama-3-8b, overrides: {{max_context: 4096}}}}
  emb: {{preset: bge-large-en-v1.5}}
  emb2: {{preset: bge-large-en-v1.5, precision: fp16}}
  stt: {{preset: whisper-large-v3}}
  stt2: {{preset: whisper-large-v3, precision: fp16}}
  tts: {{preset: kokoro-82m}}
  tts2: {{preset: kokoro-82m, precision: fp16}}
  ed: {{arch: {{kind: encoder_decoder, n_layers: 2, d_model: 64, n_heads: 2, d_ff: 128, vocab_size: 100,
              encoder_layers: 2}}}}
nodes:
  in: {{kind: input, produces: {produces}}}
  n: {{kind: {kind}{fields}}}
  out: {{kind: output}}
edges:
  - in -> n -> out
"""
# the fields each kind needs besides the one under test
BASE = {"input": "", "output": "", "llm": "model: chat", "speech_to_text": "model: stt", "text_to_speech": "model: tts",
        "embedding": "model: emb", "model": "model: chat", "kv_cache": "model: chat", "tool": "latency_ms: 10",
        "memory_lookup": "n_vectors: 100, dim: 1024", "memory_store": "dim: 1024", "compute": "cpu_ms: 1",
        "guardrail": "model: chat",
        "agent": "graph: {nodes: {i: {kind: input}, o: {kind: output}}, edges: [i -> o]}"}
# two values of a field that both load (audio_seconds: 1 and 2 of speech_to_text's 30 s windows)
VALUES = {"produces": ("text", "json"), "audio_seconds": ("10", "50"), "dim": ("8", "16"), "precision": ("fp32", "int8"),
          "index": ("flat", "hnsw"), "placement": ("local", "remote"), "op": ("none", "softmax"),
          "tool": ("web", "db"), "latency_p99_ms": ("20", "30"), "n_vectors": ("100", "200"), "plan_as_unit": ("false", "true"), "bytes": ("100", "200"),
          "graph": ("{nodes: {i: {kind: input}, o: {kind: output}}, edges: [i -> o]}",
                    "{nodes: {i: {kind: input}, c: {kind: compute, cpu_ms: 1}, o: {kind: output}}, "
                    "edges: [i -> c -> o]}")}
MODELS = {"llm": ("chat", "chat2"), "model": ("chat", "chat2"), "kv_cache": ("chat", "chat2"), "guardrail": ("chat", "chat2"),
          "speech_to_text": ("stt", "stt2"), "text_to_speech": ("tts", "tts2"), "embedding": ("emb", "emb2"),
          "embed_model": ("emb", "emb2"), "rerank_model": ("chat", "chat2")}


def emitted_ir(tmp_path: Path, kind: str, field: str, value: str) -> str:
    if kind == "input":  # the node under test is the input
        spec = SPEC.format(produces="text", kind="compute", fields=", cpu_ms: 1").replace(
            "in: {kind: input, produces: text}", f"in: {{kind: input, {field}: {value}}}")
        if field in ("audio_seconds", "dim"):
            spec = spec.replace("{kind: input,", "{kind: input, produces: %s," % ("audio" if field != "dim" else
                                                                                  "embedding"))
    else:
        base = dict(part.split(": ", 1) for part in BASE[kind].split(", ") if part) if kind != "agent" else {}
        if field in ("embed_model", "query_tokens", "tokens") and kind.startswith("memory_"):
            base.pop("dim", None)  # dim comes from the model; the tokens are what it embeds
            base.setdefault("embed_model", "emb")
        if field == "file":
            (tmp_path / f"{value}.yaml").write_text(
                f"hetc: 1\nname: {value}\nnodes: {{i: {{kind: input}}, {value}: {{kind: compute, cpu_ms: 1}}, "
                "o: {kind: output}}\nedges: [i -> " + value + " -> o]\n")
            base, value = {}, f"{value}.yaml"
        elif kind == "agent" and field != "graph":
            base = {"graph": VALUES["graph"][1]}
        base[field] = value
        fields = "".join(f", {k}: {v}" for k, v in base.items())
        spec = SPEC.format(produces="audio" if kind == "speech_to_text" else "text", kind=kind, fields=fields)
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    module = spec_to_module(load_spec(path))
    PipelineRun(spec="inline-agents,decompose-llm,decompose-tools,decompose-nodes").run(module)
    return re.sub(r'hetc.spec_sha256 = "\w+"', "", print_module(module))  # the file's hash always differs


def test_docs_list_every_loader_field():
    documented = set(documented_fields())
    assert documented == {(kind, rule.name) for kind, rules in NODE_FIELDS.items() for rule in rules}


@pytest.mark.parametrize("kind, field", documented_fields())
def test_each_documented_field_reaches_the_ir(tmp_path: Path, kind: str, field: str):
    if field == "model" or field in MODELS and kind != "input":
        a, b = MODELS.get(kind if field == "model" else field)
    elif field == "file":
        a, b = "first", "second"
    else:
        a, b = VALUES.get(field, ("3", "5"))
    first = emitted_ir(tmp_path, kind, field, a)
    second = emitted_ir(tmp_path, kind, field, b)
    assert first != second, f"{kind}.{field}: {a} and {b} give the same IR"


def test_rag_assistant_stores_512_tokens_and_kv_cache_defaults_to_the_documented_2048(tmp_path: Path):
    rag = Path(__file__).resolve().parent.parent / "examples" / "rag-assistant.yaml"
    module = spec_to_module(load_spec(rag))
    PipelineRun(spec="inline-agents,decompose-llm,decompose-tools,decompose-nodes").run(module)
    assert re.search(r"task.embed @remember.embed\(.*tokens = 512 : i64", print_module(module))
    assert "tokens = 2048 : i64" in emitted_ir(tmp_path, "kv_cache", "placement", "local")
