"""Hostile IR for `hetc opt` (issue 12): whatever the file holds, the exit code is 0, 2 or 3, never 1 (an
internal error) and never a hang. Mutations of the examples' IR: hostile numbers (NaN, inf, negative, zero,
huge), duplicated, deleted and swapped lines and symbols, random bytes, deep nesting, truncation; with no
passes, the default pipeline or a random prefix of it.

HETC_FUZZ_IR_EXAMPLES sets the number of examples (bench/fuzz_opt.py runs thousands)."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetc.cli import main
from hetc.pipeline import DEFAULT_PIPELINE, print_module
from hetc.spec.frontend import spec_to_module
from hetc.spec.loader import load_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("rag-assistant", "moe-agent", "supervisor", "voice-agent")
EXAMPLES_RUN = int(os.environ.get("HETC_FUZZ_IR_EXAMPLES", "25"))
TIMEOUT_S = 120  # one `hetc opt` on an example takes about a second; far longer is a hang

NUMBER = re.compile(r"(?<![\w.#])-?\d+(?:\.\d+e[-+]\d+)?(?= : (?:i64|f64))")
SYMBOL = re.compile(r'@"?[\w.\-/>#]+"?')
HOSTILE_INTS = ("0", "-1", "9223372036854775807", "1000000000", "4294967296")
HOSTILE_FLOATS = ("0x7FF8000000000000", "0x7FF0000000000000", "0xFFF0000000000000", "-1.000000e+00",
                  "0.000000e+00", "1.000000e+300", "5.000000e-324")


@functools.cache
def sources() -> tuple[str, ...]:
    return tuple(print_module(spec_to_module(load_spec(ROOT / "examples" / f"{name}.yaml"))) for name in EXAMPLES)


@st.composite
def mutated(draw) -> str:
    text = sources()[draw(st.integers(0, len(EXAMPLES) - 1))]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["number", "number", "number", "dup_line", "del_line", "swap_symbol", "bytes",
                                     "deep", "truncate"]))
        lines = text.splitlines(keepends=True)
        if kind == "number":
            spots = list(NUMBER.finditer(text))
            if not spots:
                continue
            spot = draw(st.sampled_from(spots))
            is_float = text[spot.end():spot.end() + 6] == " : f64"
            value = draw(st.sampled_from(HOSTILE_FLOATS if is_float else HOSTILE_INTS))
            text = text[:spot.start()] + value + text[spot.end():]
        elif kind in ("dup_line", "del_line"):
            if not lines:
                continue
            at = draw(st.integers(0, len(lines) - 1))
            lines.insert(at, lines[at]) if kind == "dup_line" else lines.pop(at)
            text = "".join(lines)
        elif kind == "swap_symbol":
            symbols = sorted({m[0] for m in SYMBOL.finditer(text)})
            if not symbols:
                continue
            a, b = draw(st.sampled_from(symbols)), draw(st.sampled_from(symbols))
            text = text.replace(a, b, 1)
        elif kind == "bytes":
            at = draw(st.integers(0, len(text)))
            noise = draw(st.binary(min_size=1, max_size=16)).decode("latin-1")
            text = text[:at] + noise + text[at:]
        elif kind == "deep":
            depth = draw(st.sampled_from([50, 300, 5000]))
            text = text.replace("kernel = ", "deep = " + "[" * depth + "]" * depth + ", kernel = ", 1)
        else:
            text = text[: draw(st.integers(0, len(text)))]
    return text


def run_opt(path: Path, passes: str) -> int:
    def hang(*_):
        raise TimeoutError(f"hetc opt -p '{passes}' ran over {TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                main(["opt", str(path), "-p", passes])
            except SystemExit as exc:
                code = exc.code
        assert code != 1, err.getvalue()
        return code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


PASSES = DEFAULT_PIPELINE.split(",")


# the suite runs a fixed set of examples; a longer run (bench/fuzz_opt.py) draws new ones each time
@settings(max_examples=EXAMPLES_RUN, deadline=None, derandomize="HETC_FUZZ_IR_EXAMPLES" not in os.environ,
          database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_ir_never_exits_1(tmp_path: Path, data):
    text = data.draw(mutated())
    path = tmp_path / "hostile.mlir"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    passes = ",".join(PASSES[: data.draw(st.integers(0, len(PASSES)))])
    assert run_opt(path, passes) in (0, 2, 3)


def opt_error(tmp_path: Path, text: str, passes: str = DEFAULT_PIPELINE) -> str:
    path = tmp_path / "bad.mlir"
    path.write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit:
        main(["opt", str(path), "-p", passes])
    assert exit.value.code == 2, err.getvalue()
    return err.getvalue()


@pytest.mark.parametrize("old, new, message", [
    ("cpu_ms = 5.000000e+00", "cpu_ms = 0x7FF8000000000000", r"bad.mlir:6:5: .*cpu_ms must be a finite number, got nan"),
    ("n_heads = 32", "n_heads = 0", r"bad.mlir:3:3: .*agent.arch: n_heads must be > 0, got 0"),
    ("input_tokens = 3072", "input_tokens = -5", r"bad.mlir:8:5: .*input_tokens must be > 0, got -5"),
    ("requests_per_s = 1.000000e+02", "requests_per_s = -1.0", r"hetc.traffic: requests_per_s must be > 0"),
    ("latency_ms = 1.500000e+04", "latency_ms = 0x7FF0000000000000", r"hetc.slo: latency_ms must be a finite"),
    ("top_k = 8", "top_k = 0", r"agent.memory_lookup @retrieve: top_k must be > 0"),
    # found by the fuzz: xDSL's lexer reads '\u00b2' as a digit and int() refuses it (was an internal error)
    ("top_k = 8", "top_k =\u00b2 8", r"bad.mlir:\d+:\d+: .*a number with a digit other than 0-9"),
    ('index = "hnsw"', 'index = "btree"', r"index must be one of flat\|hnsw, got 'btree'"),
    ("%3 = agent.llm @answer_llm(%2) {model = @chat,",
     '%3 = agent.call @answer_llm(%2) {callee = @nothing} : (!agent.documents) -> !agent.text\n'
     "    %9 = agent.llm @answer(%2) {model = @chat,", r"bad.mlir:8:5: .*unknown callee @nothing"),
])
def test_hostile_numbers_and_symbols_are_located_errors(tmp_path: Path, old: str, new: str, message: str):
    text = sources()[0]
    assert old in text
    assert re.search(message, opt_error(tmp_path, text.replace(old, new, 1)))


def test_duplicate_symbol_is_a_located_error(tmp_path: Path):
    lines = sources()[0].splitlines(keepends=True)
    lines.insert(2, lines[2])  # agent.model @chat twice
    assert re.search(r'bad.mlir:4:3: .*Redefinition of symbol "chat"', opt_error(tmp_path, "".join(lines)))


def test_call_arity_mismatch_is_a_located_error(tmp_path: Path):
    supervisor = sources()[2]
    old = "%9 = agent.call @analyst(%8)"
    assert old in supervisor
    bad = supervisor.replace(old, "%9 = agent.call @analyst(%8, %8)").replace(
        'plan_as_unit = 1 : i64} : (!agent.text) -> !agent.documents',
        'plan_as_unit = 1 : i64} : (!agent.text, !agent.text) -> !agent.documents')
    assert re.search(r"agent.call @analyst: @\"supervisor/analyst\" takes \(!agent.text\) but the call passes "
                     r"\(!agent.text, !agent.text\)", opt_error(tmp_path, bad))


def test_loop_bound_of_a_billion_is_rejected_not_run(tmp_path: Path):
    text = sources()[3].replace("max_iterations = 3 : i64", "max_iterations = 1000000000 : i64")
    assert re.search(r"agent.loop @llm.loop: max_iterations = 1000000000 is above 10000", opt_error(tmp_path, text))


def test_call_to_an_agent_whose_output_joins_two_edges_verifies(tmp_path: Path):
    """The call verifier reads a sub-agent's result as the frontend builds it: an output fed by two edges
    returns what its first edge brings."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("hetc: 1\nname: s\ntraffic: {requests_per_s: 1}\nnodes:\n  i: {kind: input}\n"
                    "  sub: {kind: agent, graph: {nodes: {i: {kind: input}, a: {kind: compute, cpu_ms: 1}, "
                    "b: {kind: compute, cpu_ms: 1}, o: {kind: output}}, edges: [i -> a -> o, i -> b -> o]}}\n"
                    "  o: {kind: output}\nedges: [i -> sub -> o]\n")
    spec_to_module(load_spec(spec)).verify()
