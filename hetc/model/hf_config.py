"""Model architectures from Hugging Face `config.json` files, and the bundled library of them.

`arch_from_config` reads the architecture fields transformers writes (Llama/Qwen/Mistral/Gemma/Phi/gpt-oss
decoders, Mixtral/Qwen-MoE/DeepSeek mixtures of experts with shared experts and MLA, Whisper, BERT/XLM-R
encoders) into a ModelArch. hetc/data/hf-configs/*.json hold the architecture fields of widely deployed
open models, each with `_source` (the config's URL) and `_name` (hetc's short name); `bundled()` lists
them by short name and by repo id.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from hetc.errors import HetcError, Loc
from hetc.model.arch import ModelArch

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "data" / "hf-configs"
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few KiB (DeepSeek-V3's, among the largest, is under 2 KiB)
_ENCODER_TYPES = ("bert", "roberta", "xlm-roberta", "deberta-v2", "nomic_bert", "modernbert", "new")


def _int(cfg: dict[str, Any], *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if default is None:
        raise HetcError(f"config.json has none of {', '.join(keys)}")
    return default


def _sliding(cfg: dict[str, Any], n_layers: int) -> tuple[int, int]:
    """(window, layers using it) from the config's sliding-window fields."""
    window = cfg.get("sliding_window")
    if not isinstance(window, int) or window <= 0 or cfg.get("use_sliding_window") is False:
        return 0, 0
    types = cfg.get("layer_types")
    if isinstance(types, list):
        return window, sum(1 for t in types if t == "sliding_attention")
    pattern = cfg.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 1:  # Gemma 3: every pattern-th layer is global
        return window, n_layers - n_layers // pattern
    if cfg.get("model_type") == "gemma2":  # alternating local/global
        return window, n_layers // 2
    return window, n_layers  # Mistral: every layer


def arch_from_config(cfg: dict[str, Any], name: str, source: str = "") -> ModelArch:
    """The ModelArch a config.json describes."""
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers (Gemma 3): the language model
        cfg = {**cfg, **cfg["text_config"]}
    model_type = str(cfg.get("model_type", ""))
    common = {"name": name, "source": source, "vocab_size": _int(cfg, "vocab_size"),
              "tied_embeddings": bool(cfg.get("tie_word_embeddings", True))}
    if model_type == "whisper":
        return ModelArch(kind="encoder_decoder", n_layers=_int(cfg, "decoder_layers"), d_model=_int(cfg, "d_model"),
                         n_heads=_int(cfg, "decoder_attention_heads"), n_kv_heads=_int(cfg, "decoder_attention_heads"),
                         d_ff=_int(cfg, "decoder_ffn_dim"), max_context=_int(cfg, "max_target_positions"),
                         encoder_layers=_int(cfg, "encoder_layers"),
                         encoder_frames=_int(cfg, "max_source_positions"), gated_mlp=False, **common)
    n_layers = _int(cfg, "num_hidden_layers", "n_layer")
    d_model = _int(cfg, "hidden_size", "n_embd")
    n_heads = _int(cfg, "num_attention_heads", "n_head")
    if model_type in _ENCODER_TYPES:
        return ModelArch(kind="encoder", n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_heads,
                         d_ff=_int(cfg, "intermediate_size"), max_context=_int(cfg, "max_position_embeddings"),
                         gated_mlp=False, **common)
    experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0)
    moe_d_ff = _int(cfg, "moe_intermediate_size", default=0) if experts else 0
    shared = _int(cfg, "n_shared_experts", default=0)
    if experts and not shared and _int(cfg, "shared_expert_intermediate_size", default=0):
        shared = max(1, _int(cfg, "shared_expert_intermediate_size") // (moe_d_ff or _int(cfg, "intermediate_size")))
    kv_lora = _int(cfg, "kv_lora_rank", default=0)
    head_dim = _int(cfg, "head_dim", default=0)
    if kv_lora:  # MLA: per-head query/key width is the non-rotary plus the rotary part
        head_dim = _int(cfg, "qk_nope_head_dim") + _int(cfg, "qk_rope_head_dim")
    window, window_layers = _sliding(cfg, n_layers)
    return ModelArch(
        kind="decoder", n_layers=n_layers, d_model=d_model, n_heads=n_heads,
        n_kv_heads=_int(cfg, "num_key_value_heads", default=n_heads), d_ff=_int(cfg, "intermediate_size"),
        max_context=_int(cfg, "max_position_embeddings", default=8192), n_experts=experts,
        experts_per_token=_int(cfg, "num_experts_per_tok", "experts_per_token", "num_experts_per_token",
                               default=0) if experts else 0,
        moe_d_ff=moe_d_ff, n_shared_experts=shared,
        first_dense_layers=_int(cfg, "first_k_dense_replace", default=0) if experts else 0,
        kv_lora_rank=kv_lora, qk_rope_head_dim=_int(cfg, "qk_rope_head_dim", default=0) if kv_lora else 0,
        head_dim_override=head_dim if head_dim and head_dim != d_model // n_heads else 0,
        sliding_window=window, sliding_layers=window_layers, **common)


def load_config(path: str | Path, name: str | None = None) -> ModelArch:
    """A ModelArch from a config.json file; errors name the file."""
    from hetc.json_source import loads_json
    from hetc.userfiles import UnreadableFile, read_regular_file

    path = Path(path)
    what = "cannot read a Hugging Face config.json"
    try:
        cfg = loads_json(read_regular_file(path, MAX_CONFIG_BYTES, "config.json files").decode("utf-8"), str(path))
    except (UnreadableFile, UnicodeDecodeError) as exc:
        raise HetcError(f"{what}: {exc}", Loc(str(path))) from None
    except HetcError as exc:  # invalid or too deeply nested JSON, located
        raise HetcError(f"{what}: {exc.diagnostics[0].message}", exc.diagnostics[0].loc) from None
    if not isinstance(cfg, dict):
        raise HetcError(f"{path}: expected a JSON object (a Hugging Face config.json)")
    try:
        return arch_from_config(cfg, name or str(cfg.get("_name") or path.parent.name or path.stem),
                                str(cfg.get("_source") or path))
    except (HetcError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise HetcError(f"{path}: not a model architecture hetc understands: {exc}") from None


@lru_cache(maxsize=1)
def bundled() -> dict[str, ModelArch]:
    """Bundled configs by short name and by Hugging Face repo id (lower case)."""
    out: dict[str, ModelArch] = {}
    for path in sorted(BUNDLED_DIR.glob("*.json")):
        cfg = json.loads(path.read_text())
        arch = arch_from_config(cfg, cfg["_name"], cfg["_source"]).with_overrides(hf_repo=cfg["_repo"])
        out[cfg["_name"]] = arch
        out[cfg["_repo"].lower()] = arch
    return out
