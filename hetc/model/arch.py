"""A model's architecture (ModelArch) and the parameter arithmetic the cost model needs.

Parameter counts follow reference/llm-perf-model.md: a decoder layer with grouped-query attention and a
gated MLP holds 2*d*d + 2*d*h_kv*d_h (Q, O, K, V) + 3*d*d_ff (gate, up, down) weights; MoE layers hold
n_experts copies of the MLP. Norms and biases are ignored (< 0.1 % of the total).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

MODEL_KINDS = ("decoder", "encoder", "encoder_decoder", "tts")

# Bytes per element of each precision we plan for.
PRECISION_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}


@dataclass(frozen=True)
class ModelArch:
    name: str
    kind: str  # one of MODEL_KINDS
    n_layers: int  # decoder layers (encoder layers for kind=encoder)
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    max_context: int = 8192
    n_experts: int = 0  # 0 = dense MLP
    experts_per_token: int = 0
    encoder_layers: int = 0  # encoder_decoder only
    encoder_frames: int = 0  # encoder positions per 30 s window (Whisper: 1500)
    tied_embeddings: bool = False
    params_override: int = 0  # published total when the formula does not fit (e.g. TTS vocoders)
    source: str = ""
    head_dim_override: int = 0  # config head_dim when it is not d_model / n_heads (Gemma, Qwen3)
    # mixture of experts: d_ff of one routed expert (0 = d_ff), always-on shared experts, leading dense layers
    moe_d_ff: int = 0
    n_shared_experts: int = 0
    first_dense_layers: int = 0
    # multi-head latent attention (DeepSeek-V2/V3): the KV cache holds one latent of kv_lora_rank plus a
    # rotary key of qk_rope_head_dim per token and layer, shared by all heads
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    # sliding-window attention: `sliding_layers` of the layers attend to the last `sliding_window` tokens
    # only (Mistral: all; Gemma 2: every other; Gemma 3: 5 of 6)
    sliding_window: int = 0
    sliding_layers: int = 0
    gated_mlp: bool = True  # SwiGLU/GeGLU (3 matrices) or a plain 2-matrix MLP (BERT, Whisper, gpt2-style)
    hf_repo: str = ""
    engine: str = ""  # serving engine (a profile in hetc/model/engines.py); "" = what the device runs by default

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.d_model // self.n_heads

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    def _attention_params(self) -> int:
        d, q = self.d_model, self.n_heads * self.head_dim
        if self.kv_lora_rank:
            # MLA: down-projection to the latent + rotary key, up-projections to per-head K and V, Q and O
            latent = d * (self.kv_lora_rank + self.qk_rope_head_dim)
            up = self.kv_lora_rank * self.n_heads * 2 * self.head_dim
            return latent + up + 2 * d * q
        return 2 * d * q + 2 * d * self.n_kv_heads * self.head_dim

    def _mlp_params(self, d_ff: int = 0) -> int:
        mats = 3 if self.gated_mlp and self.kind == "decoder" else 2
        return mats * self.d_model * (d_ff or self.d_ff)

    def expert_params(self) -> int:
        """One routed expert's MLP."""
        return self._mlp_params(self.moe_d_ff)

    def moe_layers(self) -> int:
        return self.n_layers - self.first_dense_layers if self.is_moe else 0

    def _embedding_params(self) -> int:
        copies = 1 if self.tied_embeddings else 2
        return copies * self.vocab_size * self.d_model

    def params(self) -> int:
        """Total parameters (all experts). Memoised on the instance (the fields are frozen): the cost model
        asks for it several times per decode step, thousands of times per placement."""
        cached = self.__dict__.get("_params")
        if cached is None:
            cached = self.__dict__["_params"] = self._count_params()
        return cached

    def _count_params(self) -> int:
        if self.params_override:
            return self.params_override
        total = self.n_layers * self._attention_params() + self._embedding_params()
        total += (self.n_layers - self.moe_layers()) * self._mlp_params()
        total += self.moe_layers() * (self.n_experts * self.expert_params()
                                      + self.n_shared_experts * self.expert_params())
        if self.kind == "encoder_decoder":
            # decoder layers also hold cross-attention (another 4*d*d)
            total += self.n_layers * 4 * self.d_model * self.d_model
            total += self.encoder_layers * (4 * self.d_model * self.d_model + self._mlp_params())
        return total

    def active_params(self) -> int:
        """Parameters touched per token (k of E experts for MoE)."""
        if not self.is_moe:
            return self.params()
        cached = self.__dict__.get("_active_params")
        if cached is None:
            routed = self.moe_layers() * (self.n_experts - self.experts_per_token) * self.expert_params()
            cached = self.__dict__["_active_params"] = self.params() - routed
        return cached

    def _kv_elements_per_layer(self) -> int:
        if self.kv_lora_rank:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.n_kv_heads * self.head_dim

    def kv_bytes_per_token(self, bytes_per_element: float) -> float:
        """K and V for every layer: 2 * L * h_kv * d_h * b (MLA: L * (latent + rope) * b). Sliding-window
        layers hold the same per token, but only for their window (kv_cache_bytes)."""
        return self.n_layers * self._kv_elements_per_layer() * bytes_per_element

    def kv_cache_bytes(self, context_tokens: float, bytes_per_element: float) -> float:
        """KV bytes one sequence holds (and a decode step reads) at `context_tokens` of context."""
        per_layer = self._kv_elements_per_layer() * bytes_per_element
        windowed = min(context_tokens, self.sliding_window) if self.sliding_window else context_tokens
        return per_layer * ((self.n_layers - self.sliding_layers) * context_tokens + self.sliding_layers * windowed)

    def decode_attention_flops(self, context_tokens: float) -> float:
        """Scores and values of one new token over its context: 4 * h * d_h per position and layer."""
        return 4 * self.n_heads * self.head_dim * self.kv_cache_bytes(context_tokens, 1.0) / self._kv_elements_per_layer()

    def prefill_attention_flops(self, tokens: float) -> float:
        """Causal attention over a prompt: 2 * h * d_h * T^2 per layer (T * w for windowed layers)."""
        full = (self.n_layers - self.sliding_layers) * tokens ** 2
        window = self.sliding_layers * tokens * min(tokens, self.sliding_window or tokens)
        return 2 * self.n_heads * self.head_dim * (full + window)

    def with_overrides(self, **changes) -> ModelArch:
        return replace(self, **changes)


ARCH_FIELDS = tuple(f.name for f in fields(ModelArch))
