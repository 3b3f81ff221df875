"""Named models: presets from public configs, their aliases and Hugging Face repositories, and the resolution of
a model name (a preset, a bundled Hugging Face config, or a path to a config.json) to its ModelArch.

The architecture itself and its parameter arithmetic are hetc.model.arch (re-exported here for the modules
that import them from hetc.model.models); reading a config.json is hetc.model.hf_config.
"""

from __future__ import annotations

from pathlib import Path

from hetc.model.arch import ARCH_FIELDS, MODEL_KINDS, PRECISION_BYTES, ModelArch
from hetc.model.hf_config import bundled, load_config

__all__ = ["ALIASES", "ARCH_FIELDS", "HF_REPOS", "MODEL_KINDS", "PRECISION_BYTES", "PRESETS", "ModelArch", "hf_repo",
           "resolve_preset"]


_LLAMA3_SRC = "https://huggingface.co/meta-llama/Meta-Llama-3-{}/blob/main/config.json"

PRESETS: dict[str, ModelArch] = {
    "llama-3-8b": ModelArch(
        "llama-3-8b", "decoder", n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336,
        vocab_size=128256, max_context=8192, source=_LLAMA3_SRC.format("8B")),
    "llama-3-70b": ModelArch(
        "llama-3-70b", "decoder", n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, d_ff=28672,
        vocab_size=128256, max_context=8192, source=_LLAMA3_SRC.format("70B")),
    "llama-3.1-405b": ModelArch(
        "llama-3.1-405b", "decoder", n_layers=126, d_model=16384, n_heads=128, n_kv_heads=8,
        d_ff=53248, vocab_size=128256, max_context=131072,
        source="https://huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json"),
    "mixtral-8x7b": ModelArch(
        "mixtral-8x7b", "decoder", n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336,
        vocab_size=32000, max_context=32768, n_experts=8, experts_per_token=2,
        source="https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json"),
    "whisper-large-v3": ModelArch(
        "whisper-large-v3", "encoder_decoder", n_layers=32, d_model=1280, n_heads=20, n_kv_heads=20,
        d_ff=5120, vocab_size=51866, max_context=448, encoder_layers=32, encoder_frames=1500,
        tied_embeddings=True,
        source="https://huggingface.co/openai/whisper-large-v3/blob/main/config.json"),
    "bge-large-en-v1.5": ModelArch(
        "bge-large-en-v1.5", "encoder", n_layers=24, d_model=1024, n_heads=16, n_kv_heads=16,
        d_ff=4096, vocab_size=30522, max_context=512, tied_embeddings=True,
        source="https://huggingface.co/BAAI/bge-large-en-v1.5/blob/main/config.json"),
    "kokoro-82m": ModelArch(
        # StyleTTS2-derived: a 12-layer ALBERT text encoder (hidden 768) plus a decoder/vocoder;
        # the layer numbers describe the text encoder, params_override the published total.
        "kokoro-82m", "tts", n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, d_ff=2048,
        vocab_size=178, max_context=512, tied_embeddings=True, params_override=82_000_000,
        source="https://huggingface.co/hexgrad/Kokoro-82M/blob/main/config.json"),
}

ALIASES = {
    "llama3-8b": "llama-3-8b", "llama3-70b": "llama-3-70b", "llama-3.1-8b": "llama-3-8b",
    "llama-3.1-70b": "llama-3-70b", "llama-3.3-70b": "llama-3-70b", "llama3.1-405b": "llama-3.1-405b",
    "whisper": "whisper-large-v3", "bge-large": "bge-large-en-v1.5", "kokoro": "kokoro-82m",
}

# The Hugging Face repository a serving engine loads for each preset (vLLM `--model`), with its model card.
# Agents converse, so decoders name the instruction-tuned release of the architecture above.
HF_REPOS: dict[str, tuple[str, str]] = {
    "llama-3-8b": ("meta-llama/Meta-Llama-3-8B-Instruct",
                   "https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct"),
    "llama-3-70b": ("meta-llama/Meta-Llama-3-70B-Instruct",
                    "https://huggingface.co/meta-llama/Meta-Llama-3-70B-Instruct"),
    "llama-3.1-405b": ("meta-llama/Llama-3.1-405B-Instruct",
                       "https://huggingface.co/meta-llama/Llama-3.1-405B-Instruct"),
    "mixtral-8x7b": ("mistralai/Mixtral-8x7B-Instruct-v0.1",
                     "https://huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1"),
    "whisper-large-v3": ("openai/whisper-large-v3", "https://huggingface.co/openai/whisper-large-v3"),
    "bge-large-en-v1.5": ("BAAI/bge-large-en-v1.5", "https://huggingface.co/BAAI/bge-large-en-v1.5"),
    "kokoro-82m": ("hexgrad/Kokoro-82M", "https://huggingface.co/hexgrad/Kokoro-82M"),
}


def hf_repo(name: str) -> str | None:
    """The Hugging Face repo id of a preset (or alias) or a bundled config (its `_repo`), or None for a model
    hetc has no repo for."""
    preset = resolve_preset(name)
    if preset is None:
        return None
    return HF_REPOS[preset.name][0] if preset.name in HF_REPOS else preset.hf_repo or None


def resolve_preset(name: str) -> ModelArch | None:
    """A preset, a bundled Hugging Face config (short name or repo id, hetc/data/hf-configs), or a path to a
    config.json; None when it is none of these."""
    key = name.strip().lower()
    arch = PRESETS.get(ALIASES.get(key, key))
    if arch is not None:
        return arch
    if key in bundled():  # the bundled configs are read on the first name that is not a preset
        return bundled()[key]
    if name.strip().endswith(".json") and Path(name.strip()).is_file():
        return load_config(name.strip())
    return None
