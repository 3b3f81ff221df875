"""Bindings: where each node's work really happens, kept apart from the plan (one plan, dev and prod).

A bindings file (`hetc serve BUNDLE --bind FILE`) is YAML:

    hetc-bindings: 1
    python_path: [.]                       # folders for `module:function` callables, relative to this file
    request_timeout_ms: 30000              # optional; default: the plan's end-to-end SLO
    models:
      chat: {endpoint: http://127.0.0.1:8001/v1, model: meta-llama/Llama-3.1-8B-Instruct}
    nodes:
      search: {http: http://127.0.0.1:8088/search, timeout_ms: 500, retries: 2}
      status: {callable: helpdesk:status}
      retrieve: {vectors: index/vectors.npy, documents: index/documents.jsonl, embed: helpdesk:embed}
      triage: {callable: helpdesk:triage}
      remember: {callable: notes:store, embed: notes:tokens}   # a memory_store with an embed_model

A retrieval or memory_store node whose embed stage runs on a CPU gets token vectors ([tokens, dim]) from its
`embed` callable and pools them with the bundle's kernel (docs/deploy.md, "Generated kernels"). An embed stage
an engine serves (the plan's service `api`) needs its model's endpoint instead, and its retrieval node no
`embed` callable.

`validate_bindings` checks the file against the plan and returns plain data (it travels to Ray replicas);
every error names the file, line and column and the run exits with code 2.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hetc.errors import Diagnostic, HetcError, Loc
from hetc.spec.yaml_source import MAX_FILE_BYTES, YamlList, YamlMap, YamlNode, YamlScalar, read_yaml_mapping
from hetc.userfiles import UnreadableFile, read_regular_file

VERSION = 1
MAX_DOCUMENTS_BYTES = 1 << 30  # an index's documents (one JSON line each) are read whole, into memory
CALLABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI function names
DEFAULT_TOOL_RETRIES = 2

TOP_KEYS = ("hetc-bindings", "python_path", "request_timeout_ms", "models", "nodes")
MODEL_KEYS = ("endpoint", "model", "api_key_env")
NODE_KEYS = {  # plan stage kinds of a node -> the keys its binding accepts
    "tool": ("http", "callable", "timeout_ms", "retries", "name", "description", "parameters"),
    "retrieval": ("vectors", "documents", "embed"),
    "code": ("callable", "embed"),  # embed: text -> token vectors, for a memory_store's embed stage
    "embedding": ("embed",),  # an embedding node: text -> token vectors
}


def endpoint_env(model_id: str) -> str:
    """The environment variable that gives a model's endpoint when the bindings do not (set by the
    Kubernetes export to the model's vLLM service)."""
    return "HETC_ENDPOINT_" + (re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_").upper() or "MODEL")


def node_role(kinds: set[str]) -> str | None:
    """What kind of binding a node takes, from its stages' kinds."""
    if "tool_lookup" in kinds:
        return "tool"
    if "vector_search" in kinds:
        return "retrieval"
    if kinds & {"compute", "memory_store"}:
        return "code"
    return "embedding" if "embed" in kinds else None


class _Checker:
    def __init__(self, file: str, base: Path):
        self.file, self.base, self.errors = file, base, []

    def error(self, loc: Loc, message: str) -> None:
        self.errors.append(Diagnostic(loc, message))

    def mapping(self, node: YamlNode, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[YamlScalar, YamlNode]]:
        if not isinstance(node, YamlMap):
            self.error(node.loc, f"{what} must be a mapping, got {node.describe()}")
            return {}
        for key, (key_node, _) in node.entries.items():
            if key not in allowed:
                self.error(key_node.loc, f"unknown key {key!r} in {what}; expected one of {', '.join(allowed)}")
        for key, loc, _first in node.duplicates:
            self.error(loc, f"duplicate key {key!r} in {what}")
        return {k: v for k, v in node.entries.items() if k in allowed}

    def string(self, node: YamlNode, what: str, pattern: re.Pattern | None = None, expected: str = "") -> str | None:
        if not isinstance(node, YamlScalar) or not isinstance(node.value, str) or not node.value:
            self.error(node.loc, f"{what} must be a non-empty string, got {node.describe()}")
            return None
        if pattern is not None and not pattern.match(node.value):
            self.error(node.loc, f"{what}: expected {expected}")
            return None
        return node.value

    def number(self, node: YamlNode, what: str, *, integer: bool = False, minimum: float = 0) -> float | None:
        value = getattr(node, "value", None)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum
        if ok and integer and value != int(value):
            ok = False
        if not ok or value != value or value in (float("inf"), float("-inf")):
            kind = "an integer" if integer else "a number"
            self.error(node.loc, f"{what} must be {kind} >= {minimum:g}, got {node.describe()}")
            return None
        return int(value) if integer else float(value)

    def path(self, node: YamlNode, what: str, suffix: str) -> str | None:
        text = self.string(node, what)
        if text is None:
            return None
        resolved = (self.base / text).resolve()
        if not resolved.is_file():
            self.error(node.loc, f"{what}: no such file (relative to the bindings file)")
            return None
        if suffix and resolved.suffix != suffix:
            self.error(node.loc, f"{what}: expected a {suffix} file")
            return None
        return str(resolved)


def _plan_nodes(plan: dict[str, Any]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for stage in plan["stages"]:
        kinds.setdefault(stage["node"], set()).add(stage["kind"])
    return kinds


def _llm_models(plan: dict[str, Any]) -> dict[str, str]:
    """Spec model id -> preset name, for every model a model server runs for the runtime: LLM, speech, and
    each stage whose plan entry names the engine API the runtime calls (service `api`)."""
    return {s["model"]["id"]: s["model"]["name"] for s in plan["stages"]
            if s["model"] is not None and (s["kind"] in ("prefill", "decode", "encoder", "tts")
                                           or s["service"].get("api"))}


def stage_endpoint_env(stage_id: str) -> str:
    """The environment variable that gives one stage its own engine server (the Kubernetes export sets it for
    each engine stage the runtime calls, so two servers of one model each serve their own stage)."""
    return "HETC_STAGE_ENDPOINT_" + (re.sub(r"[^A-Za-z0-9]+", "_", stage_id).strip("_").upper() or "STAGE")


def _engine_embedded(plan: dict[str, Any]) -> set[str]:
    """Nodes whose embed stage an engine serves: their search gets the query vector from it."""
    return {s["node"] for s in plan["stages"] if s["kind"] == "embed" and s["service"].get("api")}


def _branching_nodes(plan: dict[str, Any]) -> set[str]:
    stage_node = {s["id"]: s["node"] for s in plan["stages"]}
    return {stage_node[e["src"]] for e in plan["edges"] if e["probability"] < 1 and not e["back_edge"]}


def _check_model(checker: _Checker, model_id: str, node: YamlNode, preset: str) -> dict[str, Any]:
    from hetc.model.models import hf_repo
    from hetc.runtime.audio import served_model_name

    entries = checker.mapping(node, f"models.{model_id}", MODEL_KEYS)
    # by default the name its server answers to: the repo id (vLLM), or a speech server's own name for it
    default_name = served_model_name(preset) or hf_repo(preset) or preset
    binding: dict[str, Any] = {"endpoint": os.environ.get(endpoint_env(model_id)) or None,
                               "model": default_name, "api_key_env": None}
    for key, (_, value) in entries.items():
        if key == "endpoint":
            binding[key] = checker.string(value, "endpoint", URL, "an http(s) URL of an OpenAI-compatible API "
                                                                   "(e.g. http://127.0.0.1:8001/v1)")
        elif key == "api_key_env":
            binding[key] = checker.string(value, "api_key_env", re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"),
                                          "the name of an environment variable")
        else:
            binding[key] = checker.string(value, key)
    return binding


def _check_node(checker: _Checker, node_id: str, node: YamlNode, role: str, embedded: bool) -> dict[str, Any]:
    where = f"nodes.{node_id}"
    entries = checker.mapping(node, f"{where} (a {role} node)", NODE_KEYS[role])
    values = {key: value for key, (_, value) in entries.items()}
    binding: dict[str, Any] = {"role": role}
    if role == "tool":
        if ("http" in values) == ("callable" in values):
            checker.error(node.loc, f"{where}: a tool binding needs exactly one of 'http' (URL) and 'callable' "
                                    "(module:function)")
        if "http" in values:
            binding["http"] = checker.string(values["http"], "http", URL, "an http(s) URL")
        if "callable" in values:
            binding["callable"] = checker.string(values["callable"], "callable", CALLABLE, "module:function")
        binding["timeout_ms"] = (checker.number(values["timeout_ms"], "timeout_ms", minimum=1)
                                 if "timeout_ms" in values else None)
        binding["retries"] = (checker.number(values["retries"], "retries", integer=True)
                              if "retries" in values else DEFAULT_TOOL_RETRIES)
        binding["name"] = (checker.string(values["name"], "name", TOOL_NAME, "1-64 of A-Z a-z 0-9 _ -")
                           if "name" in values else None)
        binding["description"] = checker.string(values["description"], "description") if "description" in values else ""
        binding["parameters"] = _plain(values["parameters"]) if "parameters" in values else None
        if binding["parameters"] is not None and not isinstance(binding["parameters"], dict):
            checker.error(values["parameters"].loc, "parameters must be a JSON Schema object (a mapping)")
    elif role == "retrieval":
        for key in ("vectors", "documents"):
            if key not in values:
                checker.error(node.loc, f"{where}: a retrieval binding needs '{key}'")
        binding["vectors"] = checker.path(values["vectors"], "vectors", ".npy") if "vectors" in values else None
        binding["documents"] = checker.path(values["documents"], "documents", ".jsonl") if "documents" in values else None
        binding["embed"] = checker.string(values["embed"], "embed", CALLABLE, "module:function") if "embed" in values else None
        if "embed" not in values and not embedded:
            checker.error(node.loc, f"{where}: a retrieval binding needs 'embed' (module:function: text -> vector)")
    else:
        for key in ("callable", "embed"):
            binding[key] = (checker.string(values[key], key, CALLABLE, "module:function") if key in values else None)
    return binding


def _plain(node: YamlNode) -> Any:
    if isinstance(node, YamlScalar):
        return node.value
    if isinstance(node, YamlList):
        return [_plain(item) for item in node.items]
    return {key: _plain(value) for key, (_, value) in node.entries.items()}


def _check_index(checker: _Checker, binding: dict[str, Any], loc: Loc) -> None:
    """Vectors are a 2-D float32 matrix with one row per document line."""
    import numpy as np

    if not binding["vectors"] or not binding["documents"]:
        return
    for key in ("vectors", "documents"):  # np.load of a FIFO would block; of a device, never end
        if not Path(binding[key]).is_file():
            checker.error(loc, f"{key}: not a regular file")
            return
    try:
        vectors = np.load(binding["vectors"], mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        checker.error(loc, f"vectors: not a readable .npy array ({type(exc).__name__})")
        return
    if vectors.ndim != 2 or vectors.dtype != np.float32:
        checker.error(loc, f"vectors: expected a 2-D float32 array, got {vectors.ndim}-D {vectors.dtype}")
        return
    try:
        documents = read_regular_file(binding["documents"], MAX_DOCUMENTS_BYTES, "document files")
    except UnreadableFile as exc:
        checker.error(loc, f"documents: cannot read: {exc}")
        return
    lines = sum(1 for line in documents.splitlines() if line.strip())
    if lines != vectors.shape[0]:
        checker.error(loc, f"documents: {lines} documents for {vectors.shape[0]} vectors; expected one line each")


def validate_bindings(plan: dict[str, Any], path: str | Path | None) -> dict[str, Any]:
    """Plain-data bindings for the plan; without a file, only the defaults (and the errors they leave)."""
    base = Path(path).resolve().parent if path else Path.cwd()
    file = str(path) if path else "bindings"
    checker = _Checker(file, base)
    entries: dict[str, tuple[YamlScalar, YamlNode]] = {}
    if path is not None:
        try:
            data = read_regular_file(path, MAX_FILE_BYTES, "bindings files")
        except UnreadableFile as exc:
            raise HetcError(f"cannot read the bindings file: {exc}", Loc(file)) from None
        root = read_yaml_mapping(data, file, "a bindings file")
        entries = checker.mapping(root, "the bindings file", TOP_KEYS)
        version = entries.get("hetc-bindings")
        if version is None or getattr(version[1], "value", None) != VERSION:
            checker.error(version[1].loc if version else root.loc, f"expected 'hetc-bindings: {VERSION}'")
    python_path = [str(base)]
    if "python_path" in entries:
        items = entries["python_path"][1]
        if isinstance(items, YamlList):
            python_path = [str((base / p).resolve()) for p in
                           (checker.string(item, "python_path entry") for item in items.items) if p]
        else:
            checker.error(items.loc, f"python_path must be a list of folders, got {items.describe()}")
    timeout = None
    if "request_timeout_ms" in entries:
        timeout = checker.number(entries["request_timeout_ms"][1], "request_timeout_ms", minimum=1)

    llm_models = _llm_models(plan)
    models: dict[str, Any] = {}
    given_models = checker.mapping(entries["models"][1], "models", tuple(llm_models)) if "models" in entries else {}
    for model_id, preset in sorted(llm_models.items()):
        node = given_models.get(model_id, (None, YamlMap({}, Loc(file))))[1]
        models[model_id] = _check_model(checker, model_id, node, preset)
        if models[model_id]["endpoint"] is None and not any(d.loc == node.loc for d in checker.errors):
            checker.error(node.loc, f"model {model_id!r} has no endpoint: give models.{model_id}.endpoint (an "
                                    f"OpenAI-compatible base URL) or set {endpoint_env(model_id)}")

    embedded = _engine_embedded(plan)
    node_kinds = _plan_nodes(plan)
    roles = {node: role for node, kinds in node_kinds.items() if (role := node_role(kinds))}
    nodes: dict[str, Any] = {}
    given_nodes = checker.mapping(entries["nodes"][1], "nodes", tuple(roles)) if "nodes" in entries else {}
    for node_id, (_, value) in given_nodes.items():
        nodes[node_id] = _check_node(checker, node_id, value, roles[node_id], node_id in embedded)
        if roles[node_id] == "retrieval":
            _check_index(checker, nodes[node_id], value.loc)
    where = Loc(file)
    for node_id, role in sorted(roles.items()):
        if node_id in nodes:
            continue
        if role in ("tool", "retrieval"):
            checker.error(where, f"node {node_id!r} (a {role} node) has no binding; add it under 'nodes'")
        elif node_id in _branching_nodes(plan):
            checker.error(where, f"node {node_id!r} chooses between branches; bind a callable that returns "
                                 "the branch it takes under 'nodes'")
    if checker.errors:
        raise HetcError(checker.errors)
    stage_endpoints = {s["id"]: os.environ[stage_endpoint_env(s["id"])] for s in plan["stages"]
                       if URL.match(os.environ.get(stage_endpoint_env(s["id"]), ""))}
    return {"models": models, "nodes": nodes, "python_path": python_path, "request_timeout_ms": timeout,
            "stage_endpoints": stage_endpoints, "source": file}
