"""Ray Serve exporter: a run plan -> a Serve config file (`serve deploy serve.yaml`).

One application per plan; one deployment per stage that needs a process (the same stages as the
Kubernetes exporter). A replica reserves accelerators only when the stage's work runs in it (hetc's runtime
serves the stage); a stage an engine serves (vLLM, ...) has a replica that only calls that engine over HTTP,
and the engine's own deployment holds the devices. Accelerators map to Ray resources: NVIDIA and AMD GPUs are
Ray's "GPU" resource, Gaudi is "HPU"; accelerator_type uses the strings Ray's accelerator managers report for
a node. The application's code is hetc's runtime, `hetc.runtime.serve:build_app` (pip install "hetc[serve]"), which builds
the same deployments from plan.json; each deployment's user_config carries its stage from plan.json.
docs/plan.md ("Ray Serve") documents the mapping.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hetc.bundle.kubernetes import HTTP_CLIENT_CPU_CORES, HTTP_CLIENT_MEMORY_GB, dns_label, host_resources, needs_process
from hetc.dialects.interfaces import RUNTIME

DEFAULT_IMPORT_PATH = "hetc.runtime.serve:build_app"
HTTP_PORT = 8000

# hwdb device id -> Ray accelerator_type. NVIDIA: ray.util.accelerators constants (NVIDIA_A100 "A100",
# NVIDIA_H100 "H100", ...), which Ray derives from the NVML name. AMD: ray.util.accelerators
# AMD_INSTINCT_MI300x "AMD-Instinct-MI300X-OAM" and AMD_INSTINCT_MI325x "AMD-Instinct-MI325X-OAM". Gaudi:
# Ray's HPU manager reports "Intel-" + the device name (GAUDI2, GAUDI3; ray/_private/accelerators/hpu.py);
# Ray's INTEL_GAUDI constant "Intel-GAUDI" is the first-generation Gaudi.
RAY_ACCELERATOR_TYPES = {
    "nvidia-a100-80gb": "A100",
    "nvidia-a40": "A40",
    "nvidia-b200": "B200",
    "nvidia-gb200": "GB200",
    "nvidia-h100-pcie": "H100",
    "nvidia-h100-sxm": "H100",
    "nvidia-h200": "H200",
    "nvidia-l4": "L4",
    "nvidia-l40s": "L40S",
    "amd-mi300x": "AMD-Instinct-MI300X-OAM",
    "amd-mi325x": "AMD-Instinct-MI325X-OAM",
    "intel-gaudi2": "Intel-GAUDI2",
    "intel-gaudi3": "Intel-GAUDI3",
}
ACCELERATOR_HINT = 0.001  # how Ray expresses "on a node of this accelerator type" inside a bundle
GIB = 1024**3


def ray_resource(stage: dict[str, Any]) -> str | None:
    """The Ray resource one accelerator of the stage consumes: GPU, HPU, TPU, or None for CPU stages."""
    if stage["device_kind"] in (None, "cpu") or stage["devices_per_replica"] == 0:
        return None
    if stage["vendor"] == "intel" and stage["device_kind"] == "accelerator":
        return "HPU"
    if stage["vendor"] == "google":
        return "TPU"
    return "GPU"


def runs_in_replica(stage: dict[str, Any]) -> bool:
    """The stage's work runs in its Ray replica: hetc's runtime serves it (its bound callables, the bundle's
    kernels). Any other engine is a server of its own (vLLM, ...) that the replica only calls over HTTP, so
    the replica holds none of the stage's devices (the engine's deployment does)."""
    return stage["engine"] == RUNTIME


def deployment_options(stage: dict[str, Any]) -> dict[str, Any]:
    """Ray Serve deployment options of one stage: replicas, concurrency, actor resources, placement group.
    Accelerators are reserved only for a replica that runs the stage's work itself (runs_in_replica); one
    that calls an engine is an HTTP client and asks for an HTTP client's CPU and memory."""
    if runs_in_replica(stage):
        cores, memory_gb = host_resources(stage)
        resource = ray_resource(stage)
    else:
        cores, memory_gb, resource = HTTP_CLIENT_CPU_CORES, HTTP_CLIENT_MEMORY_GB, None
    devices = stage["devices_per_replica"]
    accelerator = RAY_ACCELERATOR_TYPES.get(stage["device"] or "") if resource is not None else None
    service = stage["service"]
    ongoing = service.get("max_batch", service.get("concurrency", 1))
    deployment: dict[str, Any] = {
        "num_replicas": stage["replicas"],
        "max_ongoing_requests": max(int(ongoing), 1),
    }
    actor: dict[str, Any] = {"num_cpus": cores, "memory": math.ceil(memory_gb * GIB)}
    if resource is not None and devices > 1:
        # A multi-device engine (tensor/pipeline parallel): the replica actor holds bundle 0 and the engine's
        # workers take one device each, packed on one node for tensor parallelism.
        bundle = {resource: 1.0}
        if accelerator:
            bundle[f"accelerator_type:{accelerator}"] = ACCELERATOR_HINT
        bundles = [dict(bundle) for _ in range(devices)]
        bundles[0].update({"CPU": cores, "memory": actor["memory"]})
        actor = {"num_cpus": cores, "memory": actor["memory"]}
        deployment["placement_group_bundles"] = bundles
        deployment["placement_group_strategy"] = "STRICT_PACK" if stage["pp"] == 1 else "PACK"
    elif resource == "GPU":
        actor["num_gpus"] = devices
        if accelerator:
            actor["accelerator_type"] = accelerator
    elif resource is not None:
        actor["resources"] = {resource: devices}
        if accelerator:
            actor["accelerator_type"] = accelerator
    deployment["ray_actor_options"] = actor
    return deployment


def _deployment(stage: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    return {"name": dns_label(stage["id"]), **deployment_options(stage),
            "user_config": {"plan": plan["name"], "stage": stage}}


def serve_config(plan: dict[str, Any], *, import_path: str = DEFAULT_IMPORT_PATH) -> dict[str, Any]:
    """The Serve config (the document `serve deploy` reads) for a validated plan."""
    app_name = dns_label(plan["name"], 48)
    deployments = [_deployment(s, plan) for s in plan["stages"] if needs_process(s)]
    application = {
        "name": app_name,
        "route_prefix": f"/{app_name}",
        "import_path": import_path,
        "args": {"plan": "plan.json"},
        "runtime_env": {"env_vars": {"HETC_PLAN": plan["name"],
                                     "HETC_SPEC_SHA256": plan["provenance"]["spec_sha256"]}},
        "deployments": sorted(deployments, key=lambda d: d["name"]),
    }
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": HTTP_PORT},
        "applications": [application],
    }


def render_ray(plan: dict[str, Any], **options: Any) -> dict[str, str]:
    """File name -> text: serve.yaml (deterministic)."""
    from hetc.yaml_text import to_yaml

    config = json.loads(json.dumps(serve_config(plan, **options)))  # plain types only
    return {"serve.yaml": to_yaml(config)}


def write_ray(plan: dict[str, Any], out_dir: str | Path, **options: Any) -> list[Path]:
    from hetc.bundle.writer import write_text_files

    return write_text_files(out_dir, render_ray(plan, **options))
