"""The `models` section of a spec or agent file: preset names, Hugging Face configs, explicit architectures
and overrides, precisions; a model id defined in two files must describe the same model."""

from __future__ import annotations

import os
from typing import Any

from hetc.errors import Loc
from hetc.model.models import ALIASES, PRESETS, ModelArch, resolve_preset
from hetc.spec import ModelRef
from hetc.spec.rules import ARCH_REQUIRED, ARCH_RULES, PRECISIONS, FieldRule, arch_problems
from hetc.spec.values import ValueReader, did_you_mean
from hetc.spec.yaml_source import YamlNode, YamlScalar


class ModelReader(ValueReader):
    """Reads model entries into ModelRefs (self.models: every model of the spec and its included files)."""

    models: dict[str, ModelRef]
    display_stack: list[str]  # the files being loaded, as diagnostics show them (a config.json is relative)

    def models_section(self, node: YamlNode) -> dict[str, ModelRef]:
        ymap = self.mapping(node, "models")
        if ymap is None:
            return {}
        found = self.keys(ymap, "in models", list(ymap.entries))
        own: dict[str, ModelRef] = {}
        for model_id, (key_node, value) in found.items():
            ref = self.model(model_id, key_node, value)
            if ref is None:
                self.invalid_models.add(model_id)
                continue
            own[model_id] = ref
            previous = self.models.get(model_id)
            if previous is None:
                self.models[model_id] = ref
            elif (previous.arch, previous.precision, previous.kv_precision) != (
                    ref.arch, ref.precision, ref.kv_precision):
                self.error(key_node.loc, f"model id '{model_id}' is already defined differently at "
                                         f"{previous.loc}; give this model another id")
        return own

    def model(self, model_id: str, key_node: YamlScalar, node: YamlNode) -> ModelRef | None:
        if not model_id.strip():
            self.error(key_node.loc, "a model id must not be empty")
            return None
        context = f"in model '{model_id}'"
        if isinstance(node, YamlScalar) and isinstance(node.value, str):  # shorthand: `chat: llama-3-8b`
            arch = self.preset(node)
            return ModelRef(model_id, arch, "bf16", "bf16", key_node.loc) if arch else None
        ymap = self.mapping(node, f"model '{model_id}'")
        if ymap is None:
            return None
        found = self.keys(ymap, context, ("preset", "arch", "overrides", "precision", "kv_precision", "engine"))
        ok = True
        if ("preset" in found) == ("arch" in found):
            self.error(ymap.loc, f"model '{model_id}' needs exactly one of 'preset' (a known model) or 'arch' "
                                 "(an explicit architecture)")
            ok = False
        if "overrides" in found and "preset" not in found:
            self.error(found["overrides"][0].loc, "'overrides' changes a preset; with 'arch' write the values there")
            ok = False
        precision_rule = FieldRule("precision", "choice", choices=PRECISIONS)
        precision = "bf16"
        if "precision" in found:
            precision = self.choice(found["precision"][1], precision_rule) or ""
        kv_precision = precision
        if "kv_precision" in found:
            kv_precision = self.choice(found["kv_precision"][1], FieldRule("kv_precision", "choice",
                                                                           choices=PRECISIONS)) or ""
        arch: ModelArch | None = None
        if ok and "preset" in found:
            arch = self.preset(found["preset"][1])
            if arch is not None and "overrides" in found:
                arch = self.arch_fields(found["overrides"][1], f"in model '{model_id}' overrides", arch, model_id)
        elif ok:
            arch = self.arch_fields(found["arch"][1], f"in model '{model_id}' arch", None, model_id)
        if arch is not None and "engine" in found:  # the serving engine is costed with the model
            engine = self.choice(found["engine"][1], ARCH_RULES["engine"])
            arch = None if engine is None else arch.with_overrides(engine=engine)
        if arch is None or not precision or not kv_precision:
            return None
        return ModelRef(model_id, arch, precision, kv_precision, key_node.loc)

    def preset(self, node: YamlNode) -> ModelArch | None:
        name = self.string(node, "a model preset name")
        if name is None:
            return None
        if name.strip().endswith(".json") and self.display_stack:  # a config.json: relative to this file
            name = os.path.join(os.path.dirname(self.display_stack[-1]), name.strip())
        arch = resolve_preset(name)
        if arch is None:
            known = sorted(set(PRESETS) | set(ALIASES))
            hint = did_you_mean(name.strip().lower(), known) or f"; known presets: {', '.join(sorted(PRESETS))}"
            self.error(node.loc, f"unknown model preset '{name}'{hint}")
        return arch

    def arch_fields(self, node: YamlNode, context: str, base: ModelArch | None, model_id: str) -> ModelArch | None:
        ymap = self.mapping(node, context.removeprefix("in "))
        if ymap is None:
            return None
        required = ARCH_REQUIRED if base is None else ()
        found = self.keys(ymap, context, tuple(ARCH_RULES), required, ARCH_RULES)
        values: dict[str, Any] = {}
        ok = all(key in found for key in required)
        for key, (_, value_node) in found.items():
            value = self.value(value_node, ARCH_RULES[key], {})
            if value is None:
                ok = False
            else:
                values[key] = value
        if not ok:
            return None
        if base is None:
            values.setdefault("name", model_id)
            values.setdefault("n_kv_heads", values["n_heads"])
            arch = ModelArch(**values)
        else:
            arch = base.with_overrides(**values)

        def at(key: str) -> Loc:
            return found[key][1].loc if key in found else ymap.loc

        problems = arch_problems(arch)
        for key, message in problems:  # at the field to blame, else the one it is measured against
            self.error(at(key if key in found else {"d_model": "n_heads", "n_kv_heads": "n_heads"}.get(key, key)),
                       message)
        consistent = not problems
        return arch if consistent else None
