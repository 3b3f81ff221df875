"""Hugging Face config.json files as model architectures, and the bundled library of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hetc.cli.hw import estimate
from hetc.errors import HetcError
from hetc.model.hf_config import BUNDLED_DIR, bundled, load_config
from hetc.model.models import resolve_preset

CONFIGS = sorted(BUNDLED_DIR.glob("*.json"))


def test_library_ships_at_least_25_cited_configs():
    assert len(CONFIGS) >= 25
    for path in CONFIGS:
        cfg = json.loads(path.read_text())
        assert cfg["_source"] == f"https://huggingface.co/{cfg['_repo']}/blob/main/config.json"
    kinds = {a.kind for a in bundled().values()}
    assert kinds == {"decoder", "encoder", "encoder_decoder"}


@pytest.mark.parametrize("name, total_b, active_b", [
    ("llama-3.2-1b", 1.24, 1.24), ("qwen2.5-7b", 7.62, 7.62), ("qwen3-30b-a3b", 30.5, 3.3),
    ("qwen3-235b-a22b", 235.1, 22.1), ("mixtral-8x22b", 140.6, 39.2), ("gemma-2-9b", 9.24, 9.24),
    ("phi-4", 14.7, 14.7), ("gpt-oss-120b", 116.8, 5.7), ("deepseek-v3", 671, 37)])
def test_parameter_counts_match_the_published_totals(name, total_b, active_b):
    # published: model cards (DeepSeek-V3 671B / 37B active; our MLA and MoE arithmetic is within 2 % and
    # counts the shared expert and dense layers as active, so active is higher)
    arch = bundled()[name]
    assert arch.params() / 1e9 == pytest.approx(total_b, rel=0.02)
    if name == "deepseek-v3":
        assert 37 <= arch.active_params() / 1e9 <= 50
    else:
        assert arch.active_params() / 1e9 == pytest.approx(active_b, rel=0.03)


def test_kv_cache_of_mla_sliding_window_and_gqa():
    # DeepSeek-V3 MLA: 61 layers * (512 latent + 64 rope) * 2 B = 70,272 B per token, not 2 * 128 heads * ...
    assert bundled()["deepseek-v3"].kv_bytes_per_token(2) == 61 * 576 * 2
    # Mistral 7B: every layer's window is 4,096 tokens, so 32K of context holds 4,096 tokens of KV
    mistral = bundled()["mistral-7b"]
    assert mistral.kv_cache_bytes(32768, 2) == mistral.kv_cache_bytes(4096, 2)
    # Gemma 3: 5 of 6 layers slide over 1,024 tokens; the global layers keep growing
    gemma3 = bundled()["gemma-3-27b"]
    assert gemma3.sliding_layers == 52 and gemma3.head_dim == 128
    assert gemma3.kv_cache_bytes(8192, 2) < 0.3 * gemma3.kv_bytes_per_token(2) * 8192
    # Llama 3 70B (GQA, 8 KV heads) keeps the classic figure
    assert resolve_preset("meta-llama/Llama-3.3-70B-Instruct").kv_bytes_per_token(2) == 327_680


def test_tied_embeddings_and_encoders():
    assert bundled()["llama-3.2-1b"].tied_embeddings and not bundled()["llama-3.1-8b"].tied_embeddings
    bge = bundled()["baai/bge-reranker-v2-m3"]
    assert bge.kind == "encoder" and not bge.gated_mlp
    whisper = bundled()["openai/whisper-large-v3-turbo"]
    assert whisper.kind == "encoder_decoder" and whisper.n_layers == 4 and whisper.encoder_frames == 1500


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_estimate_works_for_every_bundled_config(path):
    arch = load_config(path)
    result = CliRunner().invoke(estimate, ["--model", str(path), "--device", "b200", "--precision", "fp8",
                                           "--input-tokens", "256", "--output-tokens", "64", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    if arch.kind == "decoder":
        low, high = row["band_p10_p90"]["tbt_ms"]
        assert low < row["tbt_ms"] < high and row["engine"] == "vllm"
    else:  # embedders, rerankers, Whisper: one pass (plus the transcript decode), no TBT
        low, high = row["band_p10_p90"]["latency_ms"]
        assert low < row["latency_ms"] < high and "tbt_ms" not in row and row["kind"] == arch.kind


def test_estimate_engine_changes_the_figures():
    args = ["--model", "Qwen/Qwen3-8B", "--device", "h100", "--precision", "fp8", "--json"]
    vllm = json.loads(CliRunner().invoke(estimate, args).output)
    trt = json.loads(CliRunner().invoke(estimate, args + ["--engine", "trtllm"]).output)
    assert trt["tbt_ms"] < vllm["tbt_ms"] and trt["engine"] == "trtllm"


def test_bad_config_is_a_located_error(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama", "hidden_size": 4096}')
    with pytest.raises(HetcError, match="config.json: not a model architecture hetc understands"):
        load_config(bad)
    bad.write_text("{nope")
    result = CliRunner().invoke(estimate, ["--model", str(bad), "--device", "h100"])
    assert result.exit_code == 2 and "cannot read a Hugging Face config.json" in result.output
    assert "Traceback" not in result.output


def test_spec_models_take_a_bundled_config_and_an_engine(tmp_path):
    from hetc.hwdb.loader import load_hwdb
    from hetc.model import costmodel as cm
    from hetc.spec.loader import load_spec
    text = (Path(__file__).parent.parent / "examples" / "voice-agent.yaml").read_text()
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(text.replace("chat: {preset: llama-3-70b, precision: fp8}",
                                      "chat: {preset: Qwen/Qwen3-32B, precision: fp8, engine: trtllm}"))
    chat = load_spec(spec_path).models["chat"]
    assert chat.arch.name == "qwen3-32b" and chat.arch.head_dim == 128 and chat.arch.engine == "trtllm"
    h100 = load_hwdb().get("h100")
    # the model's engine is what the cost model uses when the caller names none
    assert cm.decode(chat.arch, h100, "fp8", "fp8", 1, 1, 8, 512, 512).tbt_s == \
        cm.decode(chat.arch.with_overrides(engine=""), h100, "fp8", "fp8", 1, 1, 8, 512, 512, engine="trtllm").tbt_s
    spec_path.write_text(text.replace("chat: {preset: llama-3-70b, precision: fp8}",
                                      "chat: {preset: llama-3-70b, precision: fp8, engine: tgi}"))
    with pytest.raises(HetcError, match="expected one of .*trtllm.* for 'engine'"):
        load_spec(spec_path)


@pytest.mark.parametrize("preset, config", [
    ("llama-3-8b", "meta-llama/llama-3.1-8b-instruct"), ("llama-3-70b", "meta-llama/llama-3.3-70b-instruct"),
    ("llama-3.1-405b", "meta-llama/llama-3.1-405b-instruct"), ("mixtral-8x7b", "mistralai/mixtral-8x7b-instruct-v0.1"),
    ("whisper-large-v3", "openai/whisper-large-v3"), ("bge-large-en-v1.5", "baai/bge-large-en-v1.5")])
def test_presets_agree_with_their_bundled_configs(preset, config):
    a, b = resolve_preset(preset), bundled()[config]
    assert (a.kind, a.params(), a.active_params(), a.kv_bytes_per_token(2)) == \
        (b.kind, b.params(), b.active_params(), b.kv_bytes_per_token(2))


def test_spec_takes_every_bundled_decoder_config_by_path(tmp_path):
    """A spec names a config.json by path (relative to the spec's folder) and gets the same architecture
    `hetc estimate --model PATH` uses."""
    from hetc.spec.loader import load_spec
    text = (Path(__file__).parent.parent / "examples" / "voice-agent.yaml").read_text()
    decoders = [p for p in CONFIGS if load_config(p).kind == "decoder"]
    assert len(decoders) >= 25
    for path in decoders:
        folder = tmp_path / path.stem
        (folder / "models").mkdir(parents=True)
        (folder / "models" / "config.json").write_bytes(path.read_bytes())
        (folder / "spec.yaml").write_text(text.replace("chat: {preset: llama-3-70b, precision: fp8}",
                                                       "chat: {preset: models/config.json, precision: fp8}"))
        chat = load_spec(folder / "spec.yaml").models["chat"]
        expected = load_config(path)
        assert (chat.arch.params(), chat.arch.n_layers, chat.arch.kv_cache_bytes(1, 1.0)) == \
            (expected.params(), expected.n_layers, expected.kv_cache_bytes(1, 1.0)), path.name


def test_memoised_parameter_counts_follow_overrides():
    arch = resolve_preset("llama-3-70b")
    assert arch.params() == arch.params() and arch.active_params() == arch.params()
    smaller = arch.with_overrides(n_layers=40)
    assert smaller.params() < arch.params() and smaller == arch.with_overrides(n_layers=40)
    moe = resolve_preset("mixtral-8x7b")
    assert moe.active_params() < moe.params() and moe.with_overrides(experts_per_token=4).active_params() > \
        moe.active_params()
