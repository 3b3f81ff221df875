"""The spec loader: a hetc agent spec (YAML, docs/spec.md) -> hetc.spec.Spec, or every error at once.

The loader validates everything a user can get wrong (unknown keys, types, units, ranges, model and device
names, graph shape) and collects all diagnostics before raising one HetcError, so a user fixes a spec in
one round. Defaults are applied here, so later stages read complete Node.attrs.

Each part of a spec has its reader (a mix-in of the loader): values.py (one value against its FieldRule),
model_entries.py (`models`), graph.py (nodes and edges of a graph level), nodes.py (one node; the node
kinds' fields come from their agent ops through fields.py), settings.py (`slo`, `traffic`, `hardware`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from hetc.errors import Diagnostic, HetcError, Loc
from hetc.spec import SPEC_VERSION, ModelRef, Spec
from hetc.spec.graph import GraphReader
from hetc.spec.model_entries import ModelReader
from hetc.spec.nodes import NodeReader
from hetc.spec.rules import INCLUDED_FILE_KEYS, TOP_KEYS
from hetc.spec.settings import SettingsReader
from hetc.spec.yaml_source import MAX_FILE_BYTES, YamlMap, YamlScalar, read_yaml_mapping
from hetc.userfiles import UnreadableFile, read_input


class _Loader(ModelReader, GraphReader, NodeReader, SettingsReader):
    def __init__(self, device_aliases: Mapping[str, str] | None):
        super().__init__()
        self.device_aliases = device_aliases
        self.models: dict[str, ModelRef] = {}  # every model of the spec and its included files
        self.include_stack: list[str] = []  # real paths of the files being loaded (cycle detection)
        self.display_stack: list[str] = []  # the same files as diagnostics show them
        self.included_sha256: dict[str, str] = {}

    def load_file(self, display_path: str, data: bytes, included_from: Loc | None,
                  parent_models: Mapping[str, ModelRef]) -> tuple[YamlMap, dict, dict[str, ModelRef]] | None:
        """Parse a spec or included agent file; returns (root, its keys, the models its nodes may use)."""
        what = "an agent file" if included_from else "a hetc spec"
        try:
            root = read_yaml_mapping(data, display_path, what)
        except HetcError as exc:
            self.diags.extend(exc.diagnostics)
            return None
        allowed = INCLUDED_FILE_KEYS if included_from else TOP_KEYS
        context = "in an included agent file" if included_from else "at the top level"
        top = self.keys(root, context, TOP_KEYS, required=("hetc", "name", "nodes", "edges"))
        if included_from:
            for key in TOP_KEYS:
                if key in top and key not in allowed:
                    self.error(top[key][0].loc, f"'{key}' is not allowed in an included agent file: slo, traffic "
                                                "and hardware belong to the top-level spec")
        if "hetc" in top:
            version_node = top["hetc"][1]
            if not (isinstance(version_node, YamlScalar) and type(version_node.value) is int):
                self.error(version_node.loc, f"expected the spec format version (an integer: write 'hetc: "
                                             f"{SPEC_VERSION}'), got {version_node.describe()}")
            elif version_node.value != SPEC_VERSION:
                self.error(version_node.loc, f"unsupported spec format version {version_node.value}; this hetc "
                                             f"reads version {SPEC_VERSION}")
        visible = dict(parent_models)
        if "models" in top:
            visible.update(self.models_section(top["models"][1]))
        return root, top, visible


def load_spec(path: str | Path, device_aliases: Mapping[str, str] | None = None) -> Spec:
    """Read and validate a spec file. Raises HetcError with every diagnostic found.

    device_aliases maps each accepted device name (canonical ids and aliases) to its canonical id; with
    None, device names are not checked and stay as written.
    """
    display = str(path)
    try:
        display, data = read_input(path, MAX_FILE_BYTES, "specs")  # `-` is standard input
    except UnreadableFile as exc:
        raise HetcError([Diagnostic(Loc(display), f"cannot read the spec: {exc}")]) from None
    loader = _Loader(device_aliases)
    loader.display_stack = [display]
    loader.include_stack = [os.path.realpath(display)]
    loaded = loader.load_file(display, data, None, {})
    if loaded is None:
        raise HetcError(loader.diags)
    root, top, visible = loaded
    name = loader.string(top["name"][1], "the spec's name") if "name" in top else None
    description = loader.text(top["description"][1], "a description") if "description" in top else ""
    graph = loader.graph(top.get("nodes", (None, None))[1], top.get("edges", (None, None))[1], root.loc, "",
                         visible, display)
    slo = loader.slo(top["slo"][1] if "slo" in top else None)
    traffic = loader.traffic(top["traffic"][1] if "traffic" in top else None, root.loc)
    hardware = loader.hardware(top["hardware"][1] if "hardware" in top else None)
    if traffic.tokens_per_day is not None and graph is not None and not _generates_tokens(graph):
        loader.error(traffic.loc, "tokens_per_day sizes offline work by generated tokens, and no llm node generates "
                                  "any (output_tokens > 0); give 'requests' and 'deadline_h' instead")
    if loader.diags:
        raise HetcError(loader.diags)
    return Spec(
        version=SPEC_VERSION, name=name or "", path=display, graph=graph, models=dict(loader.models), slo=slo,
        traffic=traffic, hardware=hardware, source_sha256=hashlib.sha256(data).hexdigest(),
        description=description or "", included_sha256=dict(sorted(loader.included_sha256.items())), source=data,
    )


def _generates_tokens(graph) -> bool:
    """Whether an llm node of the graph or of its sub-agents generates output tokens."""
    todo = [graph]
    while todo:
        for node in todo.pop().nodes.values():
            if node.kind == "llm" and node.attrs.get("output_tokens", 0) > 0:
                return True
            if node.subgraph is not None:
                todo.append(node.subgraph)
    return False
