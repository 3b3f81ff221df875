"""One node of a spec: its id, kind and fields checked against the rules its agent op declares
(hetc.spec.fields), defaults applied, then the rules across fields: the context window every kind's
`in_context` fields share, and the few kinds with rules of their own (input payloads, tool latencies, vector
stores and their embedding model, nested agents and agent files)."""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hetc.errors import Loc
from hetc.spec import Graph, ModelRef, Node
from hetc.spec.fields import NODE_FIELDS, NODE_KINDS
from hetc.spec.rules import ABSENT, MAX_AGENT_FILE_NESTING, REQUIRED, FieldRule
from hetc.spec.values import ValueReader, fmt
from hetc.spec.yaml_source import MAX_FILE_BYTES, YamlNode, YamlScalar
from hetc.userfiles import UnreadableFile, read_regular_file

# Bytes an input payload occupies when the spec does not say (input.bytes).
BYTES_PER_TEXT_TOKEN = 4  # ~4 characters of English per BPE token (OpenAI tokenizer rule of thumb), UTF-8
BYTES_PER_TOKEN_ID = 4  # int32 token ids
AUDIO_BYTES_PER_S = 16_000 * 2  # 16 kHz mono 16-bit PCM: Whisper's input format
EMBEDDING_ELEMENT_BYTES = 4  # fp32 vectors


class NodeReader(ValueReader):
    """Reads the nodes of a graph level (an agent node's subgraph through GraphReader.graph)."""

    include_stack: list[str]  # real paths of the agent files being loaded (cycle detection)
    display_stack: list[str]  # the same files as diagnostics show them
    included_sha256: dict[str, str]
    graph: Callable[..., Graph]  # GraphReader.graph
    load_file: Callable[..., Any]  # the loader's

    def node(self, node_id: str, key_node: YamlScalar, value: YamlNode, visible: Mapping[str, ModelRef],
             file: str) -> tuple[Node | None, bool]:
        """(the node, whether its kind is known). A node with a bad id is still registered for edges."""
        loc = key_node.loc
        if not node_id:
            self.error(loc, "a node id must not be empty")
        elif node_id != node_id.strip():
            self.error(loc, f"node id {node_id!r} starts or ends with whitespace")
        elif "->" in node_id:
            self.error(loc, f"node id '{node_id}' contains '->', which separates nodes in edges")
        context = f"in node '{node_id}'"
        ymap = self.mapping(value, f"node '{node_id}'")
        if ymap is None:
            return Node(node_id, "", loc), False
        kind_entry = ymap.entries.get("kind")
        kind = ""
        if kind_entry is None:
            self.error(ymap.loc, f"node '{node_id}' is missing required key 'kind' (one of {'|'.join(NODE_KINDS)})")
        else:
            kind = self.choice(kind_entry[1], FieldRule("kind", "choice", choices=NODE_KINDS)) or ""
        if not kind:
            for key, loc_dup, first in ymap.duplicates:
                self.error(loc_dup, f"duplicate key '{key}' {context} (first at line {first.line})")
            return Node(node_id, "", loc), False
        rules = {rule.name: rule for rule in NODE_FIELDS[kind]}
        allowed = ("kind", "description", *rules)
        required = [name for name, rule in rules.items() if rule.default is REQUIRED]
        found = self.keys(ymap, f"{context} (kind {kind})", allowed, required, rules)
        attrs: dict[str, Any] = {"description": ""}
        if "description" in found:
            attrs["description"] = self.text(found["description"][1], "a description")
        given: dict[str, Loc] = {}
        complete = all(name in found for name in required)
        for name, rule in rules.items():
            if name in found:
                given[name] = found[name][1].loc
                checked = self.value(found[name][1], rule, visible)
                if checked is None:
                    complete = False
                attrs[name] = checked
            elif rule.default is not REQUIRED:
                attrs[name] = None if rule.default is ABSENT else rule.default
        node = Node(node_id, kind, loc, attrs=attrs)
        if "model" in attrs:
            node.model = attrs.pop("model")
        if complete:
            self.kind_checks(node, given, ymap.loc, visible, file)
        return node, True

    def kind_checks(self, node: Node, given: dict[str, Loc], map_loc: Loc, visible: Mapping[str, ModelRef],
                    file: str) -> None:
        """Cross-field rules and derived defaults (docs/spec.md): a kind's own rules, then the context window."""
        own_rules = self._KIND_RULES.get(node.kind)
        if own_rules is None or own_rules(self, node, given, map_loc, visible, file):
            self.fits_context(node, given, map_loc, visible)

    def fits_context(self, node: Node, given: dict[str, Loc], map_loc: Loc, visible: Mapping[str, ModelRef]) -> None:
        """The kind's `in_context` token fields together fit in the context window of the model it runs."""
        keys = [rule.name for rule in NODE_FIELDS[node.kind] if rule.in_context]
        model = visible.get(node.model) if node.model else None
        if not keys or model is None:
            return
        tokens = sum(node.attrs[key] for key in keys)
        if tokens > model.arch.max_context:
            at = next((given[key] for key in reversed(keys) if key in given), map_loc)
            self.error(at, f"{' + '.join(keys)} ({tokens}) exceeds {model.arch.name}'s context window of "
                           f"{model.arch.max_context} tokens")

    def input_rules(self, node: Node, given: dict[str, Loc], *_: Any) -> bool:
        """Only the size field of the payload applies; bytes are derived from it."""
        attrs = node.attrs
        produces = attrs["produces"]
        uses = {"audio": "audio_seconds", "embedding": "dim"}.get(produces, "tokens")
        for key in ("tokens", "audio_seconds", "dim"):
            if key != uses:
                if key in given:
                    self.error(given[key], f"'{key}' does not apply to an input that produces {produces}")
                attrs.pop(key)
        if attrs["bytes"] is None:
            attrs["bytes"] = self.input_bytes(attrs)
        return True

    def model_rules(self, node: Node, given: dict[str, Loc], map_loc: Loc, visible: Mapping[str, ModelRef],
                    *_: Any) -> bool:
        """An encoder generates no tokens (then the context check would only repeat the problem)."""
        model = visible.get(node.model) if node.model else None
        if model and model.arch.kind == "encoder" and node.attrs["output_tokens"]:
            self.error(given["output_tokens"], f"model '{node.model}' is an encoder: it generates no tokens "
                                               "(output_tokens must be 0)")
            return False
        return True

    def tool_rules(self, node: Node, given: dict[str, Loc], *_: Any) -> bool:
        """The tool's name defaults to the node id, its p99 latency to its typical one (and is not below it)."""
        attrs = node.attrs
        if attrs["tool"] is None:
            attrs["tool"] = node.id
        if attrs["latency_p99_ms"] is None:
            attrs["latency_p99_ms"] = attrs["latency_ms"]
        elif attrs["latency_p99_ms"] < attrs["latency_ms"]:
            self.error(given["latency_p99_ms"], f"latency_p99_ms ({fmt(attrs['latency_p99_ms'])}) is below "
                                                f"latency_ms ({fmt(attrs['latency_ms'])})")
        return True

    def vector_store_rules(self, node: Node, given: dict[str, Loc], map_loc: Loc, visible: Mapping[str, ModelRef],
                           *_: Any) -> bool:
        """The vectors' length comes from the embedding model (or must be given); a lookup returns at most the
        whole index. The node runs its embedding model (Node.model)."""
        attrs, kind = node.attrs, node.kind
        embed = visible.get(attrs["embed_model"]) if attrs["embed_model"] else None
        node.model = attrs["embed_model"]
        if embed is not None:
            if attrs["dim"] is None:
                attrs["dim"] = embed.arch.d_model
            elif attrs["dim"] != embed.arch.d_model:
                self.error(given["dim"], f"dim {attrs['dim']} does not match embed_model '{node.model}' "
                                         f"({embed.arch.name}), whose vectors have {embed.arch.d_model} elements")
        elif attrs["dim"] is None:
            self.error(map_loc, f"{kind} node '{node.id}' needs 'dim' (the vector length) or 'embed_model'")
        if kind == "memory_lookup" and attrs["top_k"] > attrs["n_vectors"]:
            self.error(given.get("top_k", map_loc), f"top_k ({attrs['top_k']}) is larger than n_vectors "
                                                    f"({attrs['n_vectors']})")
        return True

    @staticmethod
    def input_bytes(attrs: dict[str, Any]) -> int:
        produces = attrs["produces"]
        if produces == "audio":
            return math.ceil(attrs["audio_seconds"] * AUDIO_BYTES_PER_S)
        if produces == "embedding":
            return attrs["dim"] * EMBEDDING_ELEMENT_BYTES
        per_token = BYTES_PER_TOKEN_ID if produces == "tokens" else BYTES_PER_TEXT_TOKEN
        return attrs["tokens"] * per_token

    def agent(self, node: Node, given: dict[str, Loc], map_loc: Loc, visible: Mapping[str, ModelRef],
              file: str) -> bool:
        """The subgraph, inline or from an agent file (relative to the file naming it; no include cycles)."""
        attrs = node.attrs
        graph_node, include = attrs.pop("graph"), attrs.pop("file")
        attrs["file"] = ""
        attrs["agent_name"] = node.id
        if (graph_node is None) == (include is None):
            self.error(map_loc, f"agent node '{node.id}' needs exactly one of 'graph' (an inline graph) or "
                                "'file' (an agent file)")
            return False
        context = f" in agent '{node.id}'"
        if graph_node is not None:
            ymap = self.mapping(graph_node, f"the graph of agent '{node.id}'")
            if ymap is None:
                return False
            found = self.keys(ymap, f"in the graph of agent '{node.id}'", ("nodes", "edges"), ("nodes", "edges"))
            if "nodes" in found and "edges" in found:
                node.subgraph = self.graph(found["nodes"][1], found["edges"][1], ymap.loc, context, visible, file)
            return False
        include_loc = given["file"]
        display = os.path.normpath(os.path.join(os.path.dirname(file), include))
        real = os.path.realpath(display)
        if len(self.include_stack) > MAX_AGENT_FILE_NESTING:
            self.error(include_loc, f"agent files nest deeper than {MAX_AGENT_FILE_NESTING} levels: "
                                    f"{' -> '.join(self.display_stack[:2])} -> ... -> {display}")
            return False
        if real in self.include_stack:
            chain = " -> ".join([*self.display_stack, display])
            self.error(include_loc, f"agent files include each other in a cycle: {chain}")
            return False
        try:
            data = read_agent_file(display)
        except UnreadableFile as exc:
            self.error(include_loc, f"cannot read agent file '{include}' ({display}): {exc}")
            return False
        self.included_sha256[display] = hashlib.sha256(data).hexdigest()
        loaded = self.load_file(display, data, include_loc, visible)
        if loaded is None:
            return False
        root, top, child_visible = loaded
        if "name" in top:
            attrs["agent_name"] = self.string(top["name"][1], "the agent's name") or node.id
        attrs["file"] = display
        self.include_stack.append(real)
        self.display_stack.append(display)
        try:
            node.subgraph = self.graph(top.get("nodes", (None, None))[1], top.get("edges", (None, None))[1],
                                       root.loc, f" in agent file {display}", child_visible, display)
        finally:
            self.include_stack.pop()
            self.display_stack.pop()
        return False

    # a kind's own rules: True to go on with the context check
    _KIND_RULES: dict[str, Callable[..., bool]] = {
        "input": input_rules, "model": model_rules, "tool": tool_rules, "memory_lookup": vector_store_rules,
        "memory_store": vector_store_rules, "agent": agent,
    }


# An agent file names its format version on a top-level line (`hetc: 1`, or `"hetc": 1` in JSON). A file
# without one is not shown at all: its keys and values would otherwise be quoted in error messages, and a
# spec can name any file (`file: /etc/shadow`).
_VERSION_LINE = re.compile(rb"""(?:^|[{,])[ \t]*(["']?)hetc\1[ \t]*:[ \t]*[0-9]+[ \t]*(?:$|[,}#])""", re.M)


def read_agent_file(path: str | Path) -> bytes:
    """An included agent file's bytes: a regular file of at most MAX_FILE_BYTES, read without blocking on a
    FIFO or following a device forever; UnreadableFile says why not, never quoting the file."""
    data = read_regular_file(path, MAX_FILE_BYTES, "specs")
    if not _VERSION_LINE.search(data):
        raise UnreadableFile("not a hetc agent file (no 'hetc: 1' line at its top level); its content is not shown")
    return data
