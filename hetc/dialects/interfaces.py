"""What a task op does, stated by the op: the interfaces (xDSL op traits) of the `task` dialect.

Every stage after decomposition asks the op instead of testing its kind (docs/ir.md, "Op interfaces"):

- `Costed`: the op is placed on its own; its placement candidates on the device pool (hetc/placement/problem.py)
  and why it has none. An op without it runs with a neighbour (MoE gate/merge, all-reduce, transfers, KV moves).
- `MovesKV`: the op moves an LLM's KV cache from its prefill to its decode (a stage once placed).
- `Served`: how a placed op is served: its engine per device target, the service model the simulator and
  runtime read (plan.json `service`), and how a request reaches it (hetc/bundle/plan.py).
- `KernelProvider`: the kernels the op needs (hetc/targets/kernels.py) and the ones a stage calls at run time
  on each target (hetc/bundle/codegen.py).
- `ResultPayload`: the bytes its result carries per request (hetc/flow.py).

Implementations that need the cost model receive it from the caller (`CostContext`), so the dialect does not
import the placement library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from xdsl.ir import Operation, SSAValue
from xdsl.traits import OpTrait, SymbolTable

from hetc.dialects.agent import AudioType, DocumentsType, EmbeddingType, ModelOp, TextType, TokensType
from hetc.targets import kernels as K

if TYPE_CHECKING:
    from collections.abc import Callable

# Bytes per request of each payload when the producer does not say (assumptions, docs/placement.md):
BYTES_PER_TOKEN = 4  # UTF-8 text, about 4 bytes per token
AUDIO_BYTES_PER_S = 32_000  # 16 kHz, 16-bit mono PCM
DOCUMENT_BYTES = 2_000  # one retrieved chunk
JSON_BYTES = 1_000
DEFAULT_TEXT_TOKENS = 256
DEFAULT_AUDIO_S = 10.0
EMBEDDING_BYTES = 1024 * 4


def _number(op: Operation, prop: str | None) -> float | None:
    attr = op.properties.get(prop) if prop else None
    return attr.value.data if attr is not None else None


# ------------------------------------------------------------------------------------------- payload


def default_payload_bytes(value: SSAValue, tokens: float | None = None, audio_s: float | None = None,
                          documents: float | None = None) -> float:
    """Bytes of one value of `value`'s type, with the sizes its producer states (None: the type's default)."""
    t = value.type
    if isinstance(t, AudioType):
        return (audio_s if audio_s is not None else DEFAULT_AUDIO_S) * AUDIO_BYTES_PER_S
    if isinstance(t, DocumentsType):
        return (documents if documents is not None else 1) * DOCUMENT_BYTES
    if isinstance(t, (TextType, TokensType)):
        return (max(1, tokens) if tokens is not None else DEFAULT_TEXT_TOKENS) * BYTES_PER_TOKEN
    if isinstance(t, EmbeddingType):
        return EMBEDDING_BYTES
    return JSON_BYTES


@dataclass(frozen=True)
class ResultPayload(OpTrait):
    """Bytes on the op's result per request, from the properties named here; a size the op does not state
    takes its payload type's default (default_payload_bytes)."""

    tokens: str | None = None  # text/tokens: the property holding the tokens produced
    audio_seconds: str | None = None  # audio: the property holding its seconds
    documents: str | None = None  # documents: the property holding their count
    documents_kb: str | None = None  # documents: the property holding their total size in kB
    passes_input_on: bool = False  # the result is the first input, passed on (a filter)

    def passed_on(self, op: Operation) -> SSAValue | None:
        """The input the result passes on (whose size it has), or None."""
        return op.operands[0] if self.passes_input_on and op.operands else None

    def result_bytes(self, op: Operation, value: SSAValue) -> float:
        if self.documents_kb and isinstance(value.type, DocumentsType):
            return _number(op, self.documents_kb) * 1000
        return default_payload_bytes(value, _number(op, self.tokens), _number(op, self.audio_seconds),
                                     _number(op, self.documents))


# ----------------------------------------------------------------------------------------- placement


class CostContext(Protocol):
    """What a Costed op needs from the compile to price itself (hetc/placement/problem.py builds it)."""

    devices: list  # the device pool (hetc.hwdb Device), those priced under the spec's pricing
    limits: Any  # hetc.placement.candidates.Limits: the TTFT / TBT limits
    estimate: Any  # hetc.placement.candidates: the candidate generators of the cost model

    def model(self, op: Operation) -> Any: ...  # hetc.placement.candidates.ModelInfo of op.model

    def pool(self) -> str: ...  # the pool's device ids, for messages

    def ttft_overhead_ms(self, op: Operation, device: Any) -> float: ...

    def phase_miss_reason(self, op: Operation, metric: str, limit: float | None,
                          ms_of: Callable[[Any, int], float | None]) -> str: ...


PREFILL, DECODE = "prefill", "decode"  # the phases of an LLM (Costed.role)


class Costed(OpTrait):
    """The op is placed on its own: its candidates (device class, tp, batch, latency, throughput)."""

    role = ""  # the LLM phase it is ("prefill" / "decode"): disaggregation, TTFT and calibration bands

    def candidates(self, op: Operation, ctx: CostContext) -> list:
        raise NotImplementedError

    def no_candidate_reason(self, op: Operation, ctx: CostContext) -> str:
        provider = op.get_trait(KernelProvider)
        if self.runnable(op, ctx.devices) or provider is None:
            return f"{op.sym_name.data}: no device of the pool ({ctx.pool()}) can run it (memory)"
        return (f"{op.sym_name.data}: needs a device of target {', '.join(provider.run_time_targets())} in the "
                f"hardware pool ({ctx.pool()}): its stage runs only with the bundle's kernel, which hetc's runtime "
                f"calls on no other target (docs/codegen.md)")

    def excluded_devices(self, op: Operation, devices: list) -> list[tuple[str, str]]:
        """(device id, why) for the pool's device classes the op may not be placed on whatever they cost
        (hetc compile --explain lists them): those where its stage would lack a kernel it requires
        (KernelProvider.required), derived from the targets its stage calls one on."""
        provider = op.get_trait(KernelProvider)
        if provider is None or not provider.required:
            return []
        targets = ", ".join(provider.run_time_targets()) or "no target"
        return [(d.id, f"no run-time kernel on {d.target}: hetc's runtime calls the {op.kind} kernel only on "
                       f"{targets} (docs/codegen.md)")
                for d in devices if not provider.called_at_run_time(d.target)]

    def runnable(self, op: Operation, devices: list) -> list:
        """The devices the op's stage can run on (all but `excluded_devices`): where its candidates may be."""
        excluded = {device_id for device_id, _why in self.excluded_devices(op, devices)}
        return [d for d in devices if d.id not in excluded]


class CpuCosted(Costed):
    """Work only a CPU runs (network round trips, CPU code)."""

    def no_candidate_reason(self, op: Operation, ctx: CostContext) -> str:
        return f"{op.sym_name.data}: needs a CPU in the hardware pool ({ctx.pool()})"


class PrefillCost(Costed):
    role = PREFILL

    def candidates(self, op, ctx):
        # per device: the KV move TTFT counts depends on where the prefill runs
        return [c for d in sorted(ctx.devices, key=lambda d: d.id)
                for c in ctx.estimate.prefill_candidates(ctx.model(op), [d], op.input_tokens.value.data, ctx.limits,
                                                         ctx.ttft_overhead_ms(op, d))]

    def no_candidate_reason(self, op, ctx):
        def ms_of(dev, tp):
            ms = ctx.estimate.prefill_ms(ctx.model(op), dev, tp, op.input_tokens.value.data)
            return None if ms is None else ms + ctx.ttft_overhead_ms(op, dev)
        return ctx.phase_miss_reason(op, "ttft_ms", ctx.limits.ttft_ms, ms_of)


class DecodeCost(Costed):
    role = DECODE

    def candidates(self, op, ctx):
        return ctx.estimate.decode_candidates(ctx.model(op), ctx.devices, op.input_tokens.value.data,
                                              op.output_tokens.value.data, ctx.limits)

    def no_candidate_reason(self, op, ctx):
        return ctx.phase_miss_reason(op, "tbt_ms", ctx.limits.tbt_ms, lambda dev, tp: ctx.estimate.decode_tbt_ms(
            ctx.model(op), dev, tp, op.input_tokens.value.data, op.output_tokens.value.data))


@dataclass(frozen=True)
class ModelPassCost(Costed):
    """One batched pass of a model over `tokens` (plus `output_tokens` decode steps of an encoder-decoder)."""

    tokens: str = "input_tokens"
    output_tokens: str | None = None

    def candidates(self, op, ctx):
        out = _number(op, self.output_tokens) if self.output_tokens else 0
        return ctx.estimate.encoder_candidates(ctx.model(op), ctx.devices, _number(op, self.tokens), out)


class SpeechSynthesisCost(Costed):
    def candidates(self, op, ctx):
        return ctx.estimate.tts_candidates(ctx.model(op), ctx.devices, op.audio_seconds.value.data)


class VectorSearchCost(Costed):
    def candidates(self, op, ctx):
        return ctx.estimate.vector_search_candidates(self.runnable(op, ctx.devices), op.n_vectors.value.data,
                                                     op.dim.value.data, op.precision.data, op.index.data)


@dataclass(frozen=True)
class NetworkCallCost(CpuCosted):
    """A round trip of `latency_ms` from a CPU's HTTP client, sending and receiving the named kB."""

    request_kb: str | None = None
    response_kb: str | None = None

    def candidates(self, op, ctx):
        return ctx.estimate.tool_candidates(ctx.devices, op.latency_ms.value.data,
                                            _number(op, self.request_kb) or 0.0, _number(op, self.response_kb) or 0.0)


class CpuWorkCost(CpuCosted):
    def candidates(self, op, ctx):
        return ctx.estimate.cpu_candidates(ctx.devices, op.cpu_ms.value.data)


class RunsWithPhase(OpTrait):
    """The op runs beside the LLM phase its `phase` property names (MoE gate and merge), placed with it;
    that phase's cost model already counts it."""


class MovesKV(OpTrait):
    """The op moves an LLM's KV cache (prefill -> decode, or to its store): priced on the edge it crosses,
    a stage of its own once placed."""


# ------------------------------------------------------------------------------------------- serving


def _concurrency(est: dict, latency_ms: float) -> int:
    """Invocations one replica runs at once (Little's law on its peak throughput)."""
    peak = est.get("peak_throughput_rps")
    return max(1, int(round(peak * latency_ms / 1e3))) if peak else 1


RUNTIME = "cpu-runtime"  # hetc's own runtime runs the stage (its bound callables and the bundle's CPU kernels)
# The API of the engine serving an op that hetc's runtime calls for each request (plan.json service `api`;
# hetc/runtime/engine_stages.py). Ops without one are reached as their stage kind says (docs/deploy.md).
EMBEDDINGS_API = "embeddings"  # POST /embeddings: the text's vector, passed on as the stage's `embedding`
SAFETY_VERDICT_API = "safety_verdict"  # POST /chat/completions to a safety classifier: "safe", or "unsafe" and
#                                        the violated categories; an unsafe verdict stops the request
RERANK_API = "rerank"  # POST /rerank to a cross-encoder: the query and its documents, rescored and reordered
TRANSCRIPTION_API = "transcription"  # POST /audio/transcriptions to a speech-to-text model (Whisper): the text
SPEECH_API = "speech"  # POST /audio/speech to a text-to-speech server: the audio of the text


@dataclass(frozen=True)
class Served(OpTrait):
    """How a placed op is served: its engine on a CPU, on Gaudi and on other accelerators; a batch service
    (ms_base + ms_per_item * batch) unless a subclass says otherwise; the engine API the runtime calls (`api`)
    wherever an engine, not hetc's runtime, serves it."""

    on_cpu: str = RUNTIME
    on_gaudi: str = "vllm"
    elsewhere: str = "vllm"
    reached_by: str | None = None  # transport into it from another device class ("http" for an external call)
    echo: tuple[str, ...] = ()  # properties the service entry repeats (the engine's request shape)
    api: str | None = None  # EMBEDDINGS_API, SAFETY_VERDICT_API, RERANK_API, ...: what the runtime asks its engine
    api_models: tuple[str, ...] = ()  # model kinds (ModelArch.kind) the api is for; empty: every model

    def engine(self, device) -> str:
        if device.kind == "cpu":
            return self.on_cpu
        return self.on_gaudi if device.target == "gaudi" else self.elsewhere

    @staticmethod
    def _model_arch(op: Operation | None):
        """The ModelArch of the op's model, or None (no model, or one the module does not define)."""
        if op is None or "model" not in op.properties:
            return None
        model = SymbolTable.lookup_symbol(op, op.model)
        return model.arch.model_arch(model.sym_name.data) if isinstance(model, ModelOp) else None

    def engine_of(self, op: Operation | None, device) -> str:
        """The engine serving `op` on `device`: the one the spec pins for its model (`engine:`), which is what
        the user asked for, else the device class's (`engine`)."""
        arch = self._model_arch(op)
        if arch is not None and arch.engine:
            return arch.engine
        return self.engine(device)

    def engine_call(self, device, op: Operation | None = None) -> dict:
        """{"api": ...} when an engine serves the op on `device` (`op`: the engine its spec pins counts) and the
        runtime calls it per request; {} when hetc's runtime runs it (its bound callable and the bundle's
        kernel) or the op has no such call."""
        if not self.api or device is None:
            return {}
        if self.api_models and getattr(self._model_arch(op), "kind", None) not in self.api_models:
            return {}  # e.g. an encoder op running a model that is no speech-to-text model
        return {"api": self.api} if self.engine_of(op, device) != RUNTIME else {}

    def service(self, op: Operation, est: dict, batch: int, device) -> dict:
        latency = est.get("latency_ms", 0.0)
        entry = {"type": "batch", "ms_base": est.get("ms_base", 0.0),
                 "ms_per_item": est.get("ms_per_item", latency / batch), "max_batch": batch}
        entry.update({name: op.properties[name].value.data for name in self.echo})
        entry.update(self.engine_call(device, op))
        return entry


MODEL_SERVER = dict(on_cpu="vllm-cpu", on_gaudi="vllm-gaudi", elsewhere="vllm")  # a model behind an LLM server
# an embedding model: hetc's runtime pools on a CPU (the bundle's kernel, EMBED_KERNELS), an engine elsewhere
EMBEDDING_SERVER = dict(on_cpu=RUNTIME, on_gaudi="vllm-gaudi", elsewhere="vllm", api=EMBEDDINGS_API)
# a cross-encoder: an engine on every device class, vLLM's CPU build on a CPU (hetc's runtime has no callable
# or kernel that rescores documents), asked through its rerank API
RERANK_SERVER = dict(**MODEL_SERVER, api=RERANK_API)
# speech to text: an LLM server that transcribes (vLLM serves Whisper's POST /audio/transcriptions)
TRANSCRIPTION_SERVER = dict(**MODEL_SERVER, api=TRANSCRIPTION_API, api_models=("encoder_decoder",))
# text to speech: a PyTorch speech server on every device class (hetc's runtime synthesises no audio itself;
# docs/deploy.md lists the servers per model), Optimum Habana on Gaudi
SPEECH_SERVER = dict(on_cpu="torch", on_gaudi="optimum-habana", elsewhere="torch", api=SPEECH_API)
HTTP_CLIENT = dict(on_cpu="http-client", on_gaudi="http-client", elsewhere="http-client")  # network calls


@dataclass(frozen=True)
class ContinuousBatching(Served):
    """Continuous batching of decode steps (step_ms_base + step_ms_per_seq * sequences)."""

    def service(self, op, est, batch, device):
        return {"type": "continuous", "step_ms_base": est["step_ms_base"], "step_ms_per_seq": est["step_ms_per_seq"],
                "max_batch": batch, "output_tokens": op.output_tokens.value.data}


@dataclass(frozen=True)
class FixedLatency(Served):
    """A fixed latency per invocation, `concurrency` at once per replica; its p99 from the named property."""

    p99: str | None = None

    def service(self, op, est, batch, device):
        latency = est.get("latency_ms", 0.0)
        return {"type": "fixed", "latency_ms": latency, "latency_p99_ms": _number(op, self.p99),
                "concurrency": _concurrency(est, latency)}


@dataclass(frozen=True)
class Transfer(Served):
    """Bytes over a link."""

    def service(self, op, est, batch, device):
        # a move between device classes: the link's own latency, `links` moves at once per replica
        return {"type": "transfer", "latency_ms": est.get("link_latency_ms", est.get("latency_ms", 0.0)),
                "bytes": est.get("bytes", 0.0),
                "bandwidth_gbs": est.get("bandwidth_gbs", device.scaleout_gbs if device else 1.0),
                "concurrency": int(est.get("links", 1))}


# ------------------------------------------------------------------------------------------- kernels


@dataclass(frozen=True)
class KernelProvider(OpTrait):
    """The kernels the op needs (specialised to its model's shapes) and, per target, the kernel kinds a
    stage of it calls at run time (hetc's runtime: hetc/runtime/kernels.py); the others have generators and
    tests but no caller (docs/codegen.md)."""

    build: Callable[..., list] = K.compute_kernels  # a targets.kernels builder: (owner, arch, attrs)
    called: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (target, kernel kinds called at run time)
    required: bool = False  # the stage fails without them (a search); else it runs without (an embed passes on)

    def owner(self, op: Operation) -> str:
        """Kernels are specialised to shapes, not ops: ops of one model (or one kind, for model-free ops)
        share them, so a graph with a thousand tool calls emits one set of elementwise kernels."""
        return op.model.root_reference.data if "model" in op.properties else op.kind

    def attrs(self, op: Operation) -> dict:
        return {}

    def called_at_run_time(self, target: str) -> tuple[str, ...]:
        return dict(self.called).get(target, ())

    def run_time_targets(self) -> tuple[str, ...]:
        """The targets a stage of the op calls a kernel on."""
        return tuple(target for target, kinds in self.called if kinds)

    def kernels(self, op: Operation, arch) -> list:
        return self.build(self.owner(op), arch, self.attrs(op))


@dataclass(frozen=True)
class SearchKernels(KernelProvider):
    build: Callable[..., list] = K.vector_search_kernels
    called: tuple = (("cpu", (K.VECTOR_SEARCH,)),)  # hetc.runtime.kernels.VectorSearch (retrieval stage)
    required: bool = True  # the search stage ranks the index only with it (hetc/runtime/workers.py)

    def owner(self, op):
        return f"search_d{op.dim.value.data}_k{op.top_k.value.data}"

    def attrs(self, op):
        return {"dim": op.dim.value.data, "top_k": op.top_k.value.data}


@dataclass(frozen=True)
class KVPackKernels(KernelProvider):
    build: Callable[..., list] = K.kv_transfer_kernels

    def attrs(self, op):
        precision = SymbolTable.lookup_symbol(op, op.model).kv_precision.data
        return {"kv_dtype": "int8" if precision == "int8" else "fp8_e4m3"}


EMBED_KERNELS = KernelProvider(K.embed_kernels, (("cpu", (K.EMBED_POOL,)),))  # hetc.runtime.kernels.EmbedPool
