"""Engine configuration for the Kubernetes export: vLLM servers as vLLM documents them, and the hetc runtime
image the bundle builds. docs/deploy.md cites the source of every flag and image.

- A vLLM server gets the model's Hugging Face repo id, its precision (`--dtype`, `--quantization fp8`,
  `--kv-cache-dtype fp8`), `--tensor-parallel-size`/`--pipeline-parallel-size`, `--max-num-seqs` from the
  plan's batch and `--max-model-len` from the node's prompt plus answer tokens.
- A P::D split across device classes becomes two servers joined by the KV connector of the pair's KV path
  (`--kv-transfer-config` and environment exactly as the plan's kv_path, an entry of hetc/data/kv-paths.yaml,
  says) and a router that sends each request to prefill, then decode; a pair without a path is refused.
- An embed stage an engine serves (off a CPU, or where the spec pins one) runs vLLM's pooling runner
  (`--runner pooling`, serving `/v1/embeddings`), so does a rerank stage (a cross-encoder, serving
  `/v1/rerank`); a guardrail (Llama Guard) is a chat model on the default runner. Their `--max-model-len` is
  the model's context from its config (ModelArch.max_context).
- A Whisper stage (service `api: transcription`) is a vLLM server started with its repo id alone; a
  text-to-speech stage (`api: speech`) runs no vLLM but its model's speech server (hetc.bundle.speech).
- Every stage that is not an engine runs in the hetc runtime image (`deploy/runtime/Dockerfile` in the bundle).
"""

from __future__ import annotations

import json
from typing import Any

from hetc.bundle.names import dns_label
from hetc.bundle.speech import SPEECH_KEY
from hetc.dialects.interfaces import EMBEDDINGS_API, RERANK_API, SAFETY_VERDICT_API
from hetc.errors import HetcError, Loc

# Public vLLM images per vendor key; `--image KEY=IMAGE` overrides one (docs/deploy.md: sources).
VLLM_IMAGES = {
    "nvidia": "vllm/vllm-openai:latest",
    "amd": "rocm/vllm:latest",
    "gaudi": "vault.habana.ai/gaudi-docker/1.23.0/ubuntu22.04/habanalabs/vllm-installer-2.9.0:latest",
    "cpu": "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:latest",
}
RUNTIME_KEY = "runtime"  # the hetc runtime image the bundle's Dockerfile builds
IMAGE_KEYS = (*VLLM_IMAGES, RUNTIME_KEY, SPEECH_KEY)
VLLM_KINDS = ("prefill", "decode", "encoder")  # stages a vLLM server runs (encoder: Whisper transcription)
# Server flags per engine API the runtime calls (a stage's service `api`, which its op states): an embedding
# model runs vLLM's pooling runner, which serves POST /v1/embeddings, and so does a cross-encoder, served
# through POST /v1/rerank (docs/deploy.md: sources); a safety classifier (Llama Guard) is a chat model on the
# default runner.
API_ARGS = {EMBEDDINGS_API: ("--runner", "pooling"), SAFETY_VERDICT_API: (), RERANK_API: ("--runner", "pooling")}
# vLLM --dtype per plan precision of the activations; fp8 weights compute in bf16 (--quantization fp8)
VLLM_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp8": "bfloat16"}
PROXY_MODULE = "hetc.runtime.pd_proxy"


def parse_images(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--image KEY=IMAGE` options (KEY: nvidia, amd, gaudi, cpu, runtime, speech); anything else is a user
    error."""
    images = {}
    for pair in pairs:
        key, sep, image = pair.partition("=")
        if not sep or not key or not image:
            raise HetcError(f"--image expects KEY=IMAGE, got {pair!r}", Loc("--image"))
        if key not in IMAGE_KEYS:
            raise HetcError(f"--image key {key!r} is not one of {', '.join(IMAGE_KEYS)}", Loc("--image"))
        images[key] = image
    return images


def vendor_key(stage: dict[str, Any]) -> str:
    if stage["device_kind"] == "cpu":
        return "cpu"
    if stage["vendor"] == "intel":
        return "gaudi"
    return stage["vendor"]


def serves_vllm(stage: dict[str, Any]) -> bool:
    """A vLLM server runs the stage: an LLM phase or a transcription, or a stage whose plan entry names the
    engine API the runtime calls (an embed stage an engine serves, a guardrail, a reranker)."""
    return (stage["engine"] or "").startswith("vllm") and stage["model"] is not None and (
        stage["kind"] in VLLM_KINDS or stage["service"].get("api") in API_ARGS)


def runtime_image(plan: dict[str, Any]) -> str:
    return f"hetc-runtime/{dns_label(plan['name'], 48)}:{plan['provenance']['hetc_version']}"


def image_of(stage: dict[str, Any] | None, plan: dict[str, Any], images: dict[str, str]) -> str:
    """A vLLM stage's public image (or the override), else the bundle's runtime image."""
    if stage is not None and serves_vllm(stage):
        key = vendor_key(stage)
        return images.get(key, VLLM_IMAGES.get(key, VLLM_IMAGES["cpu"]))
    return images.get(RUNTIME_KEY, runtime_image(plan))


def pd_phases(plan: dict[str, Any]) -> dict[str, tuple[dict, dict]]:
    """Node -> (prefill stage, decode stage) for every LLM node with both phases on vLLM."""
    by_node: dict[str, dict[str, dict]] = {}
    for stage in plan["stages"]:
        if serves_vllm(stage) and stage["kind"] in ("prefill", "decode"):
            by_node.setdefault(stage["node"], {})[stage["kind"]] = stage
    return {node: (p["prefill"], p["decode"]) for node, p in by_node.items() if len(p) == 2}


def disaggregated(prefill: dict[str, Any], decode: dict[str, Any]) -> bool:
    """Phases on different device classes run as two servers; the same class is one server."""
    return prefill["device"] != decode["device"]


def kv_path(prefill: dict[str, Any], decode: dict[str, Any], plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """The KV path the plan records for a disaggregated pair (the decode stage's kv_path, an entry of the
    KV-path table: docs/kv-paths.md); a HetcError (exit 2) naming the pair when it records none."""
    path = decode.get("kv_path")
    if not path or path.get("prefill_device") != prefill["device"]:
        level = ((plan or {}).get("provenance", {}).get("kv_paths") or {}).get("level", "released")
        raise HetcError(f"cannot export a P::D split the engines cannot serve: the plan records no KV path moving "
                        f"the KV cache of node {json.dumps(decode['node'], ensure_ascii=True)} from "
                        f"{prefill['device']} to {decode['device']} (level {level}); compile again, with "
                        "--kv-paths experimental or any if docs/kv-paths.md lists a path beyond that level",
                        Loc("plan.json"))
    return path


def kv_connector(prefill: dict[str, Any], decode: dict[str, Any]) -> str:
    """The vLLM KV connector that moves a prompt's KV cache from the prefill to the decode server: the one
    the pair's path names (NixlConnector for every path vLLM has today)."""
    return kv_path(prefill, decode)["connector"]


def kv_transfer_config(prefill: dict[str, Any], decode: dict[str, Any]) -> str:
    """--kv-transfer-config JSON, the same on both servers: the path's table entry as the engine documents it
    (NIXL: kv_role kv_both on both ends; a host-staging path adds kv_buffer_device cpu and its extra config)."""
    return json.dumps(kv_path(prefill, decode)["kv_transfer_config"], sort_keys=True, separators=(",", ":"))


def kv_env(plan: dict[str, Any], stage: dict[str, Any], pairs: dict[str, tuple[dict, dict]] | None = None
           ) -> dict[str, str]:
    """Environment variables a disaggregated server needs for its pair's KV path (e.g. the Gaudi-to-CUDA
    path's VLLM_HPU_HETERO_KV_LAYOUT); {} for a stage that is not one end of a P::D split. `pairs` is
    pd_phases(plan), when the caller has it (an exporter asks once per stage)."""
    pair = (pd_phases(plan) if pairs is None else pairs).get(stage["node"])
    if pair is not None and disaggregated(*pair) and stage["id"] in (pair[0]["id"], pair[1]["id"]):
        return dict(kv_path(*pair, plan)["env"])
    return {}


def model_lengths(plan: dict[str, Any]) -> dict[str, int]:
    """Node -> prompt plus answer tokens (its prefill's input_tokens + its decode's output_tokens), for the nodes
    that have both."""
    prompt: dict[str, int] = {}
    answer: dict[str, int] = {}
    for stage in plan["stages"]:
        node = stage["node"]
        prompt[node] = max(prompt.get(node, 0),
                           int(stage["service"].get("input_tokens", 0) if stage["kind"] == "prefill" else 0))
        answer[node] = max(answer.get(node, 0),
                           int(stage["service"].get("output_tokens", 0) if stage["kind"] == "decode" else 0))
    return {node: prompt[node] + answer[node] for node in prompt if prompt[node] and answer[node]}


def engine_call_length(stage: dict[str, Any]) -> int | None:
    """The longest sequence the model of a stage the runtime calls per request (service `api`: an embedding
    model, a safety classifier, a cross-encoder) takes: the spec's figure the plan carries (model.max_context:
    the preset's config, max_position_embeddings, or the spec's overrides); for a plan without it, the preset's;
    else None and vLLM reads the checkpoint's config itself."""
    from hetc.model.models import resolve_preset

    if not stage["service"].get("api"):
        return None
    if stage["model"].get("max_context"):
        return int(stage["model"]["max_context"])
    arch = resolve_preset(stage["model"]["name"])
    return arch.max_context if arch is not None else None


def precision_args(precision: str) -> list[str]:
    args = []
    if precision in VLLM_DTYPE:
        args += ["--dtype", VLLM_DTYPE[precision]]
    if precision == "fp8":
        args += ["--quantization", "fp8", "--kv-cache-dtype", "fp8"]
    return args


def vllm_args(plan: dict[str, Any], stage: dict[str, Any], port: int, role: str | None = None,
              pairs: dict[str, tuple[dict, dict]] | None = None, lengths: dict[str, int] | None = None) -> list[str]:
    """The vLLM server's command-line arguments (the image's entrypoint is the OpenAI API server). `pairs`
    and `lengths` are pd_phases(plan) and model_lengths(plan), when the caller has them: an exporter asks once
    per stage, and each is a pass over every stage."""
    from hetc.model.models import hf_repo

    model = stage["model"]
    # served under the repo id, the name the runtime asks for by default (the spec's model id is user text and
    # never reaches a command line)
    args = ["--model", hf_repo(model["name"]) or model["name"], *API_ARGS.get(stage["service"].get("api"), ()),
            *precision_args(model["precision"]),
            "--tensor-parallel-size", str(stage["tp"]), "--pipeline-parallel-size", str(stage["pp"]),
            "--max-num-seqs", str(stage["batch"])]
    length = (model_lengths(plan) if lengths is None else lengths).get(stage["node"]) or engine_call_length(stage)
    if length:
        args += ["--max-model-len", str(length)]
    if role is not None:
        prefill, decode = (pd_phases(plan) if pairs is None else pairs)[stage["node"]]
        kv_path(prefill, decode, plan)  # refuses a pair without a path, naming the plan's level
        args += ["--kv-transfer-config", kv_transfer_config(prefill, decode)]
    return [*args, "--port", str(port)]


def runtime_dockerfile(plan: dict[str, Any]) -> str:
    """deploy/runtime/Dockerfile: the hetc runtime image with this bundle inside (build from the bundle root)."""
    version = plan["provenance"]["hetc_version"]
    return "\n".join([
        f"# The hetc runtime image of {json.dumps(plan['name'], ensure_ascii=True)}: hetc {version} with the serve extra",
        "# and this bundle. Build it from the bundle's root folder:",
        f"#   docker build -f deploy/runtime/Dockerfile -t {runtime_image(plan)} .",
        "# hetc comes from the package index pip is given (--build-arg PIP_INDEX_URL=... for a private one).",
        "FROM python:3.11-slim",
        "ARG PIP_INDEX_URL=https://pypi.org/simple",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        f'RUN pip install --no-cache-dir "hetc[serve]=={version}"',
        "COPY . /opt/hetc/bundle",
        "WORKDIR /opt/hetc/bundle",
        "EXPOSE 8000",
        'ENTRYPOINT ["hetc", "serve", "/opt/hetc/bundle", "--local", "--host", "0.0.0.0", "--port", "8000"]',
        "",
    ])
