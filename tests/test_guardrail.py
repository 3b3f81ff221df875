"""The guardrail node kind (a safety classifier, Llama Guard 3) lands by the recipe of issue 13: one agent op,
one decomposition pattern, one task op with its interfaces. Every later stage learns what it does from
those interfaces: placement prices it, the plan serves it, the flow sizes what it passes on."""

from __future__ import annotations

from pathlib import Path

from hetc.compiler import CompileOptions, compile_spec
from hetc.dialects import task as T
from hetc.dialects.interfaces import Costed, ResultPayload, Served

ROOT = Path(__file__).resolve().parents[1]

SPEC = """hetc: 1
name: screened
slo: {latency_ms: 15000}
traffic: {requests_per_s: 5}
models:
  guard: {preset: llama-guard-3-8b}
  chat: {preset: llama-3-8b}
nodes:
  q: {kind: input, produces: text, tokens: 100}
  screen: {kind: guardrail, model: guard, input_tokens: 600, output_tokens: 6}
  answer_llm: {kind: llm, model: chat, input_tokens: 1024, output_tokens: 128}
  a: {kind: output}
edges:
  - q -> screen -> answer_llm -> a
hardware:
  pool: [intel-xeon-8480, nvidia-a100-80gb]
"""


def test_the_guardrail_task_op_states_its_behaviour():
    assert T.GuardrailOp.get_trait(Costed) is not None and T.GuardrailOp.get_trait(Costed).role == ""
    assert T.GuardrailOp.get_trait(Served).elsewhere == "vllm"
    assert T.GuardrailOp.get_trait(ResultPayload).passes_input_on


def test_a_guardrail_is_placed_priced_and_served_as_its_op_says(tmp_path: Path):
    spec = tmp_path / "screened.yaml"
    spec.write_text(SPEC)
    plan = compile_spec(str(spec), CompileOptions()).plan
    stages = {s["id"]: s for s in plan["stages"]}
    screen = stages["screen"]
    assert screen["kind"] == "guardrail" and screen["model"]["name"] == "llama-guard-3-8b"
    assert screen["device"] == "nvidia-a100-80gb" and screen["engine"] == "vllm"  # an 8B model on the GPU
    assert screen["service"]["type"] == "batch" and screen["predicted"]["latency_ms"] > 0
    assert screen["tco"]["usd_per_hour"] > 0
    # it passes its input on: the edge to the answer carries the question (100 tokens x 4 bytes), not the
    # verdict (6 tokens) nor the 256-token default of an unsized text
    (edge,) = [e for e in plan["edges"] if e["src"] == "screen"]
    assert edge["dst"] == "answer_llm.prefill" and edge["payload_bytes"] == 400.0


def test_the_example_screens_before_the_model():
    plan = compile_spec(str(ROOT / "examples" / "guarded-chat.yaml"), CompileOptions()).plan
    kinds = [s["kind"] for s in plan["stages"]]
    assert kinds.index("guardrail") < kinds.index("prefill")
    (edge,) = [e for e in plan["edges"] if e["src"] == "screen"]
    assert edge["probability"] == 0.97  # the 3 % it blocks go no further
