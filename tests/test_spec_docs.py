"""One source of truth for node fields (issue 13): the agent ops declare each node kind's fields; the spec
loader, the frontend and docs/spec.md's tables all come from those declarations."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

from xdsl.dialects.builtin import I64, IntegerAttr, StringAttr
from xdsl.irdl import irdl_op_definition, opt_prop_def, prop_def, result_def

from hetc.dialects import agent as A
from hetc.dialects.spec_fields import node_fields, spec_field
from hetc.pipeline import print_module
from hetc.spec import schema_doc
from hetc.spec.fields import NODE_FIELDS, NODE_OPS
from hetc.spec.frontend import spec_to_module
from hetc.spec.loader import load_spec
from hetc.spec.rules import REQUIRED

ROOT = Path(__file__).resolve().parent.parent


def test_docs_spec_md_tables_match_the_rules():
    text = schema_doc.DOCS.read_text(encoding="utf-8")
    assert schema_doc.render(text) == text, f"docs/spec.md is out of date; run {schema_doc.REGENERATE}"


def test_the_docs_check_notices_an_edited_table():
    text = schema_doc.DOCS.read_text(encoding="utf-8")
    edited = text.replace("| `output_tokens` | int > 0 | tokens | 256 |", "| `output_tokens` | int > 0 | tokens | 128 |")
    assert edited != text and schema_doc.render(edited) == text
    assert schema_doc.main([]) == 0


def test_every_node_kind_and_field_is_documented_from_its_op():
    docs = schema_doc.node_kinds_markdown()
    for kind, rules in NODE_FIELDS.items():
        section = docs.split(f"### `{kind}`\n", 1)[1].split("\n### ", 1)[0]
        assert NODE_OPS[kind].SPEC_DOC in section
        assert [row.split(" | ")[0] for row in re.findall(r"^\| `\w+` \|.*", section, re.M)] == \
            [f"| `{rule.name}`" for rule in rules]


def test_kinds_come_from_the_dialect_in_its_order():
    assert tuple(NODE_OPS) == ("input", "output", "llm", "speech_to_text", "text_to_speech", "embedding", "model",
                               "kv_cache", "tool", "memory_lookup", "memory_store", "compute", "guardrail", "agent")
    assert all(NODE_OPS[kind].SPEC_KIND == kind for kind in NODE_OPS)


def test_a_plain_property_is_a_field_by_its_type():
    class Plain(A.NodeOp):  # not registered: node_fields reads the definition only
        name = "agent.plain_test"
        SPEC_KIND: ClassVar[str] = "plain_test"
        result = result_def(A.JsonType)
        count = prop_def(IntegerAttr[I64])
        label = opt_prop_def(StringAttr)
        size = spec_field("number", default=2.0, unit="seconds")

    Plain = irdl_op_definition(Plain)
    rules = {name: rule for name, rule in node_fields(Plain)}
    assert (rules["count"].type, rules["count"].default) == ("int", REQUIRED)
    assert (rules["label"].type, rules["label"].default) == ("string", None)
    assert (rules["size"].type, rules["size"].default, rules["size"].unit) == ("number", 2.0, "seconds")
    assert list(rules) == ["size", "count", "label"]  # declared fields, then plain properties


def test_embedding_input_dim_reaches_the_ir(tmp_path: Path):
    """The frontend's hand-written list dropped input.dim (only its bytes reached the IR); audio inputs got a
    `tokens` property that does not apply to them."""
    path = tmp_path / "spec.yaml"
    path.write_text("hetc: 1\nname: d\ntraffic: {requests_per_s: 1}\nmodels: {chat: {preset: llama-3-8b}}\n"
                    "nodes:\n  v: {kind: input, produces: embedding, dim: 384}\n  a: {kind: input, produces: audio}\n"
                    "  c: {kind: compute, cpu_ms: 1}\n  o: {kind: output}\nedges: [v -> c -> o, a -> c]\n")
    ir = print_module(spec_to_module(load_spec(path)))
    assert re.search(r"agent.input @v\(\) \{dim = 384 : i64, payload_bytes = 1536 : i64\}", ir)
    assert re.search(r"agent.input @a\(\) \{audio_seconds = 1.000000e\+01 : f64, payload_bytes = 320000 : i64\}", ir)


NEW_KIND = textwrap.dedent('''
    from typing import ClassVar

    from xdsl.dialects.builtin import FloatAttr
    from xdsl.irdl import irdl_op_definition, prop_def, result_def

    from hetc.dialects import agent as A
    from hetc.dialects.spec_fields import spec_field
    from hetc.spec.rules import MAX_TOKENS, REQUIRED

    @irdl_op_definition
    class ClassifierOp(A.ModelNodeOp):
        name = "agent.classifier_test"
        SPEC_KIND: ClassVar[str] = "classifier_test"
        SPEC_DOC: ClassVar[str] = "A test classifier."
        result = result_def(A.JsonType)
        model = spec_field("model", default=REQUIRED, model_kinds=("encoder",), doc="the classifier")
        input_tokens = spec_field("int", default=128, unit="tokens", limit=MAX_TOKENS, in_context=True,
                                    doc="tokens classified")
        threshold = prop_def(FloatAttr)

    A.Agent._operations.append(ClassifierOp)  # what listing it in the Agent dialect does

    from hetc.errors import HetcError
    from hetc.pipeline import print_module, verify
    from hetc.spec.frontend import spec_to_module
    from hetc.spec.loader import load_spec
    from hetc.spec.schema_doc import node_kinds_markdown

    spec = load_spec("good.yaml")
    assert spec.graph.nodes["c"].attrs == {"description": "", "input_tokens": 128, "threshold": 0.5}
    module = spec_to_module(spec)
    verify(module, "the frontend")
    print([line.strip() for line in print_module(module).splitlines() if "classifier_test" in line][0])
    try:
        load_spec("bad.yaml")
    except HetcError as exc:
        print(exc)
    print("### `classifier_test`\\nA test classifier." in node_kinds_markdown())
''')

SPEC = """hetc: 1
name: k
traffic: {{requests_per_s: 1}}
models: {{enc: {{preset: bge-large-en-v1.5}}, chat: {{preset: llama-3-8b}}}}
nodes:
  i: {{kind: input}}
  c: {{kind: classifier_test, {fields}}}
  o: {{kind: output}}
edges: [i -> c -> o]
"""


def test_a_new_agent_op_is_a_node_kind_without_other_edits(tmp_path: Path):
    """Adding a node kind is adding its op: the loader checks its fields (declared ones with their units and
    limits, plain properties by type), applies defaults, the frontend emits the op, the docs list it."""
    (tmp_path / "good.yaml").write_text(SPEC.format(fields="model: enc, threshold: 0.5"))
    (tmp_path / "bad.yaml").write_text(SPEC.format(fields="model: enc, input_tokens: 1000, threshold: 1").replace(
        "  o: {", "  d: {kind: classifier_test, model: chat, treshold: 1}\n  o: {").replace("c -> o", "c -> d -> o"))
    run = subprocess.run([sys.executable, "-c", NEW_KIND], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    op_line, *errors, documented = run.stdout.strip().splitlines()
    assert op_line.startswith('%1 = agent.classifier_test @c(%0) {model = @enc, input_tokens = 128 : i64, '
                              'threshold = 5.000000e-01 : f64} : (!agent.text) -> !agent.json')
    assert errors == [
        "bad.yaml:7:56: error: input_tokens (1000) exceeds bge-large-en-v1.5's context window of 512 tokens",
        "bad.yaml:8:37: error: model 'chat' (llama-3-8b) is a decoder model; 'model' here needs an encoder model",
        "bad.yaml:8:43: error: unknown key 'treshold' in node 'd' (kind classifier_test); did you mean 'threshold'?",
    ]
    assert documented == "True"
