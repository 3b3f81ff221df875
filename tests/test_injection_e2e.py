"""End to end: a spec whose names are hostile compiles, and the names never reach code, paths or manifests.

Node ids, model ids, tool names, descriptions and the spec's name carry quotes, newlines, `../`, shell and C
metacharacters, an HTML end tag and unicode (with a right-to-left override). The spec is compiled twice
(pools that make hetc emit cpu + cuda and cpu + gaudi code). Then:
- no file under cpu/, cuda/, gaudi/ contains a hostile string or a dangerous fragment of one;
- every path in the bundle is derived: ASCII, `[A-Za-z0-9._-]` parts, no `..`, no symlink, inside the bundle;
- manifest.json and plan.json are valid JSON; the names appear in plan.json only as escaped JSON data
  (`name`, `stages[].node`, `stages[].model.id`), never in a stage id;
- deploy/ manifests parse; no name, label, selector, container command, argument or environment value
  holds a hostile string;
- report.html never holds a raw `<` from a name; every IR dump round-trips through the parser.
(tests/test_codegen_injection.py checks the targets' sanitisation directly; this is the whole path.)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from hetc.compiler import CompileOptions, compile_spec, write

QUOTE = 'x"; system("rm -rf /")'
SHELL = "$(whoami)"
BACKTICK = "`id`"
C_COMMENT = "end*/ int pwn; /*"
HTML = "</script><script>alert(1)</script>"
TRAVERSAL = "../../etc/passwd"
NEWLINE = "line1\nline2"
UNICODE = "ünï节点\u202eexe.txt"
NESTED = "sub/../..\\agent"
PERCENT = "%s%n{}#include <stdlib.h>"
SPEC_NAME = 'agent ../$(whoami)"\'; DROP'
HOSTILE = [QUOTE, SHELL, BACKTICK, C_COMMENT, HTML, TRAVERSAL, NEWLINE, UNICODE, NESTED, PERCENT, SPEC_NAME]
# Pieces of the hostile strings that never belong in generated code, even when the whole string is absent.
FRAGMENTS = ['system("', "rm -rf", "$(", "`", "</script", "<script", "alert(", "../", "*/ int", "pwn;",
             "#include <stdlib", "\u202e", "节点", "ünï", "line1\nline2", "DROP", "\\agent"]


def hostile_spec(pool_device: str, unicode_id: str = UNICODE) -> dict:
    return {
        "hetc": 1,
        "name": SPEC_NAME,
        "description": HTML,
        "slo": {"latency_ms": {"p99": 60000}, "tbt_ms": 30},
        "traffic": {"requests_per_s": 2},
        "models": {QUOTE: {"preset": "llama-3-8b"}, unicode_id: {"preset": "bge-large-en-v1.5"}},
        "nodes": {
            TRAVERSAL: {"kind": "input", "produces": "text", "tokens": 64, "description": NEWLINE},
            unicode_id: {"kind": "memory_lookup", "embed_model": unicode_id, "n_vectors": 10000, "top_k": 5,
                         "description": PERCENT},
            QUOTE: {"kind": "llm", "model": QUOTE, "input_tokens": 512, "output_tokens": 64,
                    "description": C_COMMENT},
            SHELL: {"kind": "tool", "tool": BACKTICK, "latency_ms": 100, "description": HTML},
            C_COMMENT: {"kind": "compute", "cpu_ms": 1, "op": "softmax", "description": SHELL},
            NESTED: {"kind": "agent", "graph": {
                "nodes": {SHELL: {"kind": "input", "produces": "text"},
                          PERCENT: {"kind": "compute", "cpu_ms": 0.5, "op": "l2_normalize"},
                          HTML: {"kind": "output"}},
                "edges": [f"{SHELL} -> {PERCENT} -> {HTML}"]}},
            BACKTICK: {"kind": "embedding", "model": unicode_id, "tokens": 128},
            NEWLINE: {"kind": "compute", "cpu_ms": 0.5, "op": "l2_normalize"},
            HTML: {"kind": "output"},
        },
        "edges": [
            f"{TRAVERSAL} -> {unicode_id} -> {QUOTE}",
            {f"{QUOTE} -> {SHELL}": {"probability": 0.5}},
            {f"{SHELL} -> {QUOTE}": {"max_iterations": 2}},
            f"{QUOTE} -> {C_COMMENT} -> {NESTED} -> {BACKTICK} -> {NEWLINE} -> {HTML}",
        ],
        "hardware": {"pool": ["intel-xeon-8480", pool_device]},
    }


@pytest.fixture(scope="module", params=["nvidia-h100-sxm", "intel-gaudi3"])
def bundle(request, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("inject")
    spec = base / "hostile.yaml"
    spec.write_text(yaml.safe_dump(hostile_spec(request.param), allow_unicode=True, sort_keys=False, width=1000),
                    encoding="utf-8")
    out = base / "bundle"
    write(compile_spec(str(spec), CompileOptions(dump_ir=("all",))), out)
    return out


def files_of(bundle: Path) -> dict[str, bytes]:
    return {str(p.relative_to(bundle)): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}


def test_the_kernels_the_stages_call_were_generated(bundle):
    """The hostile-named retrieval and embedding run on CPU stages, so their kernels are generated; a bundle
    holds no PTX or TPC-C (no stage calls them, docs/codegen.md); test_codegen_injection.py feeds the same
    hostile names to those targets directly."""
    dirs = {p.split("/")[0] for p in files_of(bundle)}
    assert "cpu" in dirs and not dirs & {"cuda", "gaudi"}, dirs


def test_generated_code_holds_no_hostile_text(bundle):
    code = {path: data for path, data in files_of(bundle).items() if path.split("/")[0] in ("cpu", "cuda", "gaudi")}
    assert code
    for path, data in code.items():
        binary = path.endswith((".o", ".cubin"))  # machine code holds any short byte sequence by chance
        for text in HOSTILE + [f for f in FRAGMENTS if not binary or len(f.encode()) >= 4]:
            assert text.encode("utf-8") not in data, f"{path} contains {text!r}"


_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\Z")


def test_every_path_is_derived_and_confined(bundle):
    root = bundle.resolve()
    on_disk = set()
    for path in bundle.rglob("*"):
        rel = path.relative_to(bundle)
        assert not path.is_symlink(), rel
        assert all(_PART.match(part) and part not in (".", "..") for part in rel.parts), f"underived path {rel}"
        assert root in Path(os.path.realpath(path)).parents
        if path.is_file():
            on_disk.add(str(rel))
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="ascii"))
    listed = [f["path"] for f in manifest["files"]]
    assert set(listed) == on_disk - {"manifest.json"}
    for path in listed:
        assert path.isascii() and not path.startswith("/") and ".." not in path.split("/")


def _strings(value, where: str = ""):
    """(key path, string) for every string in a JSON value, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key}#key", key
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, f"{where}[]")
    elif isinstance(value, str):
        yield where, value


def test_plan_keeps_names_as_escaped_data_only(bundle):
    raw = (bundle / "plan.json").read_bytes()
    assert raw.isascii()  # ensure_ascii: unicode and the RTL override are \u escapes
    plan = json.loads(raw)
    for text in HOSTILE:
        if '"' in text or "\n" in text or not text.isascii():
            assert text.encode() not in raw, f"{text!r} written into plan.json unescaped"
    holders = {where for where, value in _strings(plan) if any(h in value for h in HOSTILE)}
    assert holders <= {".name", ".stages[].node", ".stages[].model.id"}, holders
    stage_ids = [stage["id"] for stage in plan["stages"]]
    assert len(set(stage_ids)) == len(stage_ids)
    for stage_id in stage_ids:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", stage_id), stage_id
        assert stage_id not in (".", "..") and not any(f in stage_id for f in ("/", "$", "`", '"', "<")), stage_id
    nodes = {stage["node"] for stage in plan["stages"]}
    assert {QUOTE, SHELL, UNICODE, C_COMMENT, BACKTICK, NEWLINE} <= nodes  # the data itself survives exactly
    assert plan["name"] == SPEC_NAME


_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?\Z")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\Z")


def _check_names(doc: dict, where: str) -> None:
    meta = doc.get("metadata") or {}
    assert _DNS_SUBDOMAIN.match(meta.get("name", "x")), f"{where}: metadata.name {meta.get('name')!r}"
    label_maps = [meta.get("labels") or {}]
    spec = doc.get("spec") or {}
    label_maps.append((spec.get("selector") or {}).get("matchLabels") or spec.get("selector") or {})
    template = spec.get("template") or {}
    label_maps.append((template.get("metadata") or {}).get("labels") or {})
    for labels in label_maps:
        for key, value in labels.items():
            assert isinstance(value, str) and _LABEL_VALUE.match(value), f"{where}: label {key}={value!r}"
    for container in (template.get("spec") or {}).get("containers", []) + spec.get("containers", []):
        assert _DNS_LABEL.match(container["name"]), f"{where}: container {container['name']!r}"
        exposed = [*container.get("command", []), *container.get("args", []),
                   *(e.get("value", "") for e in container.get("env", []))]
        for item in exposed:  # Kubernetes expands $(VAR) here: no spec text may reach it
            assert not any(h in str(item) for h in HOSTILE), f"{where}: {item!r} in a container"


def test_deploy_manifests_carry_no_names_in_identifiers(bundle):
    deploy = bundle / "deploy"
    if not deploy.exists():
        pytest.skip("this bundle has no deploy/ (no placed stages)")
    manifests = sorted(deploy.rglob("*.yaml"))
    assert manifests
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict):
                continue
            where = str(path.relative_to(bundle))
            if "kind" in doc:
                _check_names(doc, where)
            for app in doc.get("applications", []):  # Ray Serve
                assert _DNS_LABEL.match(app["name"]), f"{where}: application {app['name']!r}"
                assert re.fullmatch(r"/[a-z0-9-]*", app.get("route_prefix", "/")), app.get("route_prefix")
                for deployment in app.get("deployments", []):
                    assert re.fullmatch(r"[A-Za-z0-9_.-]+", deployment["name"]), deployment["name"]


def test_report_escapes_names(bundle):
    report = bundle / "report.html"
    if not report.exists():
        pytest.skip("hetc.bundle.report is not part of this build")
    html = report.read_text(encoding="utf-8")
    for text in HOSTILE:
        if "<" in text or '"' in text:
            assert text not in html, f"{text!r} is in report.html unescaped"
    assert "<script>alert(1)" not in html


def _round_trip(dump: Path, generic: bool) -> None:
    from hetc.pipeline import parse_ir_file, print_module

    module = parse_ir_file(str(dump))  # what `hetc opt` reads
    module.verify()
    assert print_module(module, generic=generic) == dump.read_text(encoding="utf-8"), dump.name


def _all_dumps_round_trip(bundle: Path) -> None:
    dumps = sorted((bundle / "ir").glob("*.mlir"))
    assert len(dumps) >= 8
    for dump in dumps:
        _round_trip(dump, generic=dump.name.startswith("final"))


def test_ir_dumps_round_trip_with_ascii_hostile_names(tmp_path):
    spec = tmp_path / "hostile-ascii.yaml"
    spec.write_text(yaml.safe_dump(hostile_spec("nvidia-h100-sxm", unicode_id="rtl\\u202e-not-really"),
                                   sort_keys=False, width=1000), encoding="ascii")
    write(compile_spec(str(spec), CompileOptions(codegen=False, dump_ir=("all",))), tmp_path / "bundle")
    _all_dumps_round_trip(tmp_path / "bundle")


def test_ir_dumps_round_trip_with_unicode_names(bundle):
    _all_dumps_round_trip(bundle)
