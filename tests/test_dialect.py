"""The agent and task dialects: parsing, printing, verifiers."""

import pytest
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from hetc.dialects import task as T
from hetc.pipeline import make_context, print_module

MODEL = ('agent.model @chat {arch = #agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, n_heads = 32, '
         'n_kv_heads = 8, d_ff = 14336, vocab_size = 128256>, precision = "bf16", kv_precision = "bf16"}\n')


def parse(text: str):
    return Parser(make_context(), MODEL + text, "test.mlir").parse_module()


GOOD = """
agent.graph @g {
  %0 = agent.input @q() {tokens = 16 : i64} : () -> !agent.text
  %1 = agent.loop @l(%0) {max_iterations = 2 : i64} : (!agent.text) -> !agent.text {
  ^bb0(%a: !agent.text, %fb: !agent.documents):
    %2 = agent.llm @llm(%a, %fb) {model = @chat, input_tokens = 64 : i64, output_tokens = 8 : i64} : (!agent.text, !agent.documents) -> !agent.text
    %3 = agent.branch @"llm->t"(%2) {probability = 5.000000e-01 : f64} : (!agent.text) -> !agent.text
    %4 = agent.tool @t(%3) {tool = "web", latency_ms = 1.000000e+02 : f64, compute_ms = 0.000000e+00 : f64, request_kb = 1.000000e+00 : f64, response_kb = 4.000000e+00 : f64} : (!agent.text) -> !agent.documents
    agent.loop_yield exits(%2 : !agent.text) feedback(%4 : !agent.documents)
  }
  agent.output @o(%1) : !agent.text
}
"""


def test_good_module_verifies_and_round_trips_in_both_forms():
    module = parse(GOOD)
    module.verify()
    custom = print_module(module)
    generic = print_module(module, generic=True)
    assert print_module(Parser(make_context(), custom).parse_module()) == custom
    assert print_module(Parser(make_context(), generic).parse_module()) == custom
    assert '"agent.llm"' in generic and "agent.llm @llm" in custom


@pytest.mark.parametrize("bad, message", [
    (GOOD.replace("{max_iterations = 2 : i64}", "{max_iterations = 0 : i64}"), "a loop needs a bound"),
    (GOOD.replace("agent.output @o(%1) : !agent.text\n", ""), "has no agent.output"),
    (GOOD.replace("probability = 5.000000e-01", "probability = 1.500000e+00"), "probability must be in (0, 1]"),
    (GOOD.replace("@t(%3)", "@llm(%3)"), "duplicate node @llm"),
    (GOOD.replace("model = @chat", "model = @nope"), "unknown model @nope"),
    (GOOD.replace("output_tokens = 8 : i64", "output_tokens = 0 : i64"), "output_tokens must be > 0"),
])
def test_verifier_rejects_malformed_ir(bad, message):
    module = parse(bad)
    with pytest.raises(VerifyException, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        module.verify()


def test_operand_types_are_checked():
    bad = """
agent.graph @g {
  %0 = agent.input @q() {tokens = 16 : i64} : () -> !agent.text
  %1 = agent.speech_to_text @stt(%0) {model = @chat, audio_seconds = 1.000000e+00 : f64, output_tokens = 8 : i64} : (!agent.text) -> !agent.text
  agent.output @o(%1) : !agent.text
}
"""
    with pytest.raises(VerifyException, match=r"input of type !agent.text is not accepted; expected !agent.audio"):
        parse(bad).verify()


def test_loop_feedback_types_must_match_block_arguments():
    bad = GOOD.replace("%fb: !agent.documents", "%fb: !agent.text").replace(
        "(%a, %fb) {model", "(%a, %fb) {model").replace("(!agent.text, !agent.documents) -> !agent.text",
                                                          "(!agent.text, !agent.text) -> !agent.text")
    with pytest.raises(VerifyException, match="feedback values must match"):
        parse(bad).verify()


def test_device_attribute_round_trips_and_verifies():
    text = """
agent.graph @g {
  %0 = agent.input @q() {tokens = 16 : i64} : () -> !agent.text
  %1 = task.compute @c(%0) {placement = #task.device<"intel-xeon-8480", replicas = 2, tp = 1, pp = 1, batch = 4>, node = "c", cpu_ms = 1.000000e+00 : f64} : (!agent.text) -> !agent.text
  agent.output @o(%1) : !agent.text
}
"""
    module = parse(text)
    module.verify()
    op = next(o for o in module.walk() if isinstance(o, T.ComputeOp))
    assert op.placement().replicas.data == 2 and op.placement().device.data == "intel-xeon-8480"
    assert print_module(Parser(make_context(), print_module(module)).parse_module()) == print_module(module)
    with pytest.raises(VerifyException, match="replicas must be >= 1"):
        parse(text.replace("replicas = 2", "replicas = 0")).verify()


@pytest.mark.parametrize("text", [
    '#task.device<"nvidia-h100-sxm", kind = "gpu", replicas = 3, tp = 2, pp = 1, batch = 32>',
    '#task.device<"intel-xeon-8480", replicas = 1, tp = 1, pp = 1, batch = 1>',  # kind left out: ""
    '#task.target<"default">',
    '#task.target<"paper-2025", extra = ["my devices.yaml", "b.yaml"], sha256 = "' + "0f" * 32 + '">',
    '#task.estimate<latency_ms = 1.0e-05, throughput_rps = 3.0, load = 0.5, worst = 4.0, '
    'usd_per_hour = 0.30000000000000004, owned_devices = 2, memory_gb = 1.0e+20, tbt_ms = 12.25>',
    # found by tests/test_fuzz.py: a tool with ~0 ms of compute has an unbounded throughput
    '#task.estimate<latency_ms = 0.0, throughput_rps = inf, load = 1.0, worst = 1.0, usd_per_hour = 0.0, '
    'owned_devices = 0, peak_throughput_rps = inf>',
])
def test_typed_attributes_print_and_parse_back(text):
    ctx = make_context()
    attr = Parser(ctx, text).parse_attribute()
    attr.verify()
    assert str(attr) == text and Parser(ctx, str(attr)).parse_attribute() == attr


def test_estimate_values_are_the_numbers_place_wrote():
    values = {"latency_ms": 0.1 + 0.2, "throughput_rps": 7.0, "load": 1.0, "worst": 3.0, "usd_per_hour": 1e-9,
              "owned_devices": 4, "tbt_ms": 0.031, "peak_throughput_rps": 9.5}
    attr = T.EstimateAttr.from_values(values)
    assert Parser(make_context(), str(attr)).parse_attribute().values() == values
    with pytest.raises(VerifyException, match="missing worst"):
        T.EstimateAttr.from_values({k: v for k, v in values.items() if k != "worst"})
