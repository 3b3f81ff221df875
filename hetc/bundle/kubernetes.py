"""Kubernetes exporter: a run plan -> one ConfigMap + Deployment + Service per stage that needs a process.

Names are DNS-1123/1035 labels derived from sanitised stage ids (never from user node ids, which may hold
anything); user strings travel only JSON-escaped in annotations and ConfigMap data. Output is deterministic:
sorted keys, sorted files, no timestamps. docs/plan.md ("Kubernetes") documents the mapping.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from hetc.bundle.names import MAX_DNS_LABEL, dns_label, label_value

STAGE_PORT = 8000
BUNDLE_MOUNT_DIR = "/opt/hetc/bundle"
CONFIG_MOUNT_DIR = "/etc/hetc"

# Plan stage kinds with no process of their own (graph endpoints, KV moves inside the engines): hetc's router
# passes them on (hetc/runtime/router.py). The exporters ask the stage itself (needs_process).
PROCESSLESS_KINDS = frozenset({"input", "output", "kv_transfer", "allreduce"})

# Extended resource per (vendor, device kind), as the vendors' device plugins advertise them:
# NVIDIA k8s-device-plugin (nvidia.com/gpu), ROCm k8s-device-plugin (amd.com/gpu), Intel Gaudi device plugin
# (habana.ai/gaudi), Intel GPU plugin (gpu.intel.com/i915), GKE TPU (google.com/tpu).
DEVICE_PLUGIN_RESOURCE = {
    ("nvidia", "gpu"): "nvidia.com/gpu",
    ("amd", "gpu"): "amd.com/gpu",
    ("intel", "accelerator"): "habana.ai/gaudi",
    ("intel", "gpu"): "gpu.intel.com/i915",
    ("google", "accelerator"): "google.com/tpu",
}

# Node label that identifies the accelerator product, per hwdb device id.
# NVIDIA: gpu-feature-discovery sets nvidia.com/gpu.product to the NVML product name with spaces replaced by
#   '-' (NVML names: "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA H100 PCIe", "NVIDIA H200",
#   "NVIDIA B200", "NVIDIA GB200", "NVIDIA L4", "NVIDIA L40S", "NVIDIA A40").
# AMD: the ROCm k8s-node-labeller (-device-id) sets amd.com/gpu.device-id to the PCI device id
#   (MI300X OAM 74a1, MI300X HF 74a9, MI325X 74a5; the same ids as ray/_private/accelerators/amd_gpu.py).
# Devices with no vendor product label (Gaudi, CPUs, anything not listed) select on hetc.dev/device-class,
# which the cluster administrator sets to the hwdb id (kubectl label node N hetc.dev/device-class=<id>).
PRODUCT_LABELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "nvidia-a100-80gb": ("nvidia.com/gpu.product", ("NVIDIA-A100-SXM4-80GB",)),
    "nvidia-a40": ("nvidia.com/gpu.product", ("NVIDIA-A40",)),
    "nvidia-b200": ("nvidia.com/gpu.product", ("NVIDIA-B200",)),
    "nvidia-gb200": ("nvidia.com/gpu.product", ("NVIDIA-GB200",)),
    "nvidia-h100-pcie": ("nvidia.com/gpu.product", ("NVIDIA-H100-PCIe",)),
    "nvidia-h100-sxm": ("nvidia.com/gpu.product", ("NVIDIA-H100-80GB-HBM3",)),
    "nvidia-h200": ("nvidia.com/gpu.product", ("NVIDIA-H200",)),
    "nvidia-l4": ("nvidia.com/gpu.product", ("NVIDIA-L4",)),
    "nvidia-l40s": ("nvidia.com/gpu.product", ("NVIDIA-L40S",)),
    "amd-mi300x": ("amd.com/gpu.device-id", ("74a1", "74a9")),
    "amd-mi325x": ("amd.com/gpu.device-id", ("74a5",)),
}
DEVICE_CLASS_LABEL = "hetc.dev/device-class"

# Container images: public vLLM images per vendor for engine stages, the bundle's own runtime image for every
# other stage (hetc.bundle.vllm; --image KEY=IMAGE overrides one).
RUNTIME_BINDINGS_DIR = "/etc/hetc/bindings"  # the operator's bindings ConfigMap (<plan>-bindings)

# Host resources when the plan gives no stage.resources (rules of thumb, not measurements): an engine on an
# accelerator needs a few cores for the API server, tokenizer and scheduler, and host memory to stage weights.
HOST_CPU_CORES_PER_ACCELERATOR = 4
HOST_MEMORY_GB_PER_ACCELERATOR = 32
HTTP_CLIENT_CPU_CORES = 0.5  # a tool's HTTP client waits on the network
HTTP_CLIENT_MEMORY_GB = 0.5
CPU_STAGE_DEFAULT_CORES = 4
CPU_STAGE_MEMORY_HEADROOM_GB = 1.0


def stage_names(plan: dict[str, Any]) -> dict[str, str]:
    """Stage id -> unique DNS label `<plan>-<stage>`; collisions after sanitising get a hash suffix."""
    prefix = dns_label(plan["name"], 24)
    wanted = {s["id"]: dns_label(f"{prefix}-{s['id']}") for s in plan["stages"]}
    counts: dict[str, int] = {}
    for name in wanted.values():
        counts[name] = counts.get(name, 0) + 1
    names = {}
    for stage_id, name in wanted.items():
        if counts[name] > 1:
            digest = hashlib.sha256(stage_id.encode()).hexdigest()[:8]
            name = name[: MAX_DNS_LABEL - 9].rstrip("-") + "-" + digest
        names[stage_id] = name
    return names


def needs_process(stage: dict[str, Any]) -> bool:
    """A stage runs in a process of its own when its op is served by an engine (the op's Served interface
    named one in plan.json); graph endpoints and KV moves have none."""
    return stage["engine"] is not None


def _cpu_quantity(cores: float) -> str:
    millicores = math.ceil(cores * 1000)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def _memory_quantity(gigabytes: float) -> str:
    return f"{math.ceil(gigabytes * 1024)}Mi"


def host_resources(stage: dict[str, Any]) -> tuple[float, float]:
    """(CPU cores, host memory GB) one replica requests."""
    given = stage.get("resources", {})
    if stage["device_kind"] == "cpu":
        if stage["engine"] == "http-client":
            cores, memory_gb = HTTP_CLIENT_CPU_CORES, HTTP_CLIENT_MEMORY_GB
        else:
            cores = CPU_STAGE_DEFAULT_CORES
            memory_gb = stage["predicted"]["memory_gb"] + CPU_STAGE_MEMORY_HEADROOM_GB
    else:
        devices = max(1, stage["devices_per_replica"])
        cores = HOST_CPU_CORES_PER_ACCELERATOR * devices
        memory_gb = HOST_MEMORY_GB_PER_ACCELERATOR * devices
    return float(given.get("cpu_cores", cores)), float(given.get("host_memory_gb", memory_gb))


def accelerator_resource(stage: dict[str, Any]) -> str | None:
    if stage["device_kind"] in (None, "cpu") or stage["devices_per_replica"] == 0:
        return None
    return DEVICE_PLUGIN_RESOURCE.get((stage["vendor"], stage["device_kind"]))


def _node_affinity(stage: dict[str, Any]) -> dict[str, Any] | None:
    if stage["engine"] == "http-client":
        return None  # a tool's HTTP client runs on any node
    key, values = PRODUCT_LABELS.get(stage["device"], (DEVICE_CLASS_LABEL, (label_value(stage["device"]),)))
    term = {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _edge_view(edge: dict[str, Any], names: dict[str, str], other_end: str) -> dict[str, Any]:
    return {
        "stage": edge[other_end],
        "object": names[edge[other_end]],
        "transport": edge["transport"],
        "payload_bytes": edge["payload_bytes"],
        "probability": edge["probability"],
        "back_edge": edge["back_edge"],
        "max_iterations": edge["max_iterations"],
    }


def _service(meta: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": "http", "port": STAGE_PORT, "targetPort": "http", "protocol": "TCP"}]}}


def _plain_deployment(meta: dict[str, Any], selector: dict[str, str], replicas: int,
                      pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": dict(meta["labels"])}, "spec": pod_spec}}}


def _runtime_objects(plan: dict[str, Any], stages: list[dict[str, Any]], endpoints: dict[str, str],
                     stage_endpoints: dict[str, str], image: str, metadata) -> list[dict]:
    """One Deployment + Service running the hetc runtime: the router with every non-engine stage in-process,
    sized to hold each stage's planned replicas and host resources; model endpoints from the engine services,
    and each engine stage the runtime calls per request (service `api`) its own server."""
    from hetc.runtime.bindings import endpoint_env, stage_endpoint_env

    name = f"{dns_label(plan['name'], 24)}-runtime"
    replicas = max((s["replicas"] for s in stages), default=1)
    # without stages of its own, the router is an HTTP client of the engines
    cores = sum(host_resources(s)[0] * s["replicas"] for s in stages) / replicas or HTTP_CLIENT_CPU_CORES
    memory_gb = sum(host_resources(s)[1] * s["replicas"] for s in stages) / replicas or HTTP_CLIENT_MEMORY_GB
    meta = metadata(name, None)
    meta["labels"]["app.kubernetes.io/component"] = "hetc-runtime"
    selector = {"app.kubernetes.io/part-of": meta["labels"]["app.kubernetes.io/part-of"],
                "app.kubernetes.io/component": "hetc-runtime"}
    meta["annotations"] = {"hetc.dev/stages": _json(sorted(s["id"] for s in stages))}
    container = {
        "name": "runtime", "image": image,
        "args": ["--bind", f"{RUNTIME_BINDINGS_DIR}/bindings.yaml"],
        "env": [{"name": endpoint_env(model), "value": url} for model, url in sorted(endpoints.items())]
        + [{"name": stage_endpoint_env(stage), "value": url} for stage, url in sorted(stage_endpoints.items())],
        "ports": [{"name": "http", "containerPort": STAGE_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": _cpu_quantity(cores), "memory": _memory_quantity(memory_gb)},
                      "limits": {"memory": _memory_quantity(memory_gb)}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
        "volumeMounts": [{"name": "bindings", "mountPath": RUNTIME_BINDINGS_DIR, "readOnly": True}],
    }
    bindings_map = f"{dns_label(plan['name'], 24)}-bindings"
    pod_spec = {"containers": [container],
                "volumes": [{"name": "bindings", "configMap": {"name": bindings_map, "optional": True}}]}
    placed = [s for s in stages if s["engine"] != "http-client"]  # HTTP clients run anywhere
    if placed and len({s["device"] for s in placed}) == 1:
        pod_spec["affinity"] = _node_affinity(placed[0])
    return [_plain_deployment(meta, selector, replicas, pod_spec), _service(metadata(name, None), selector)]


def _router_objects(plan: dict[str, Any], node: str, decode_name: str, prefill_url: str, decode_url: str,
                    image: str, metadata) -> tuple[str, list[dict]]:
    """The P/D router of a disaggregated pair (hetc.runtime.pd_proxy in the runtime image)."""
    from hetc.bundle.vllm import PROXY_MODULE

    name = dns_label(f"{decode_name}-pd-router")  # from the sanitised stage name, never the user's node id
    meta = metadata(name, None)
    meta["labels"]["app.kubernetes.io/component"] = "pd-router"
    meta["labels"]["hetc.dev/stage"] = name
    selector = {"app.kubernetes.io/part-of": meta["labels"]["app.kubernetes.io/part-of"], "hetc.dev/stage": name}
    container = {
        "name": "router", "image": image, "command": ["python", "-m", PROXY_MODULE],
        "args": ["--prefill", prefill_url, "--decode", decode_url, "--port", str(STAGE_PORT)],
        "ports": [{"name": "http", "containerPort": STAGE_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "512Mi"}},
    }
    meta["annotations"] = {"hetc.dev/node": _json(node)}
    service_meta = metadata(name, None)
    service_meta["labels"]["hetc.dev/stage"] = name
    return name, [_plain_deployment(meta, selector, 1, {"containers": [container]}), _service(service_meta, selector)]


def kubernetes_manifests(plan: dict[str, Any], *, images: dict[str, str] | None = None,
                         namespace: str | None = None, bundle_claim: str | None = None) -> dict[str, list[dict]]:
    """File name -> Kubernetes objects. One file per process stage, plus the plan's graph ConfigMap."""
    images = images or {}
    names = stage_names(plan)
    part_of = dns_label(plan["name"], 24)
    incoming: dict[str, list[dict]] = {s["id"]: [] for s in plan["stages"]}
    outgoing: dict[str, list[dict]] = {s["id"]: [] for s in plan["stages"]}
    for edge in plan["edges"]:
        outgoing[edge["src"]].append(_edge_view(edge, names, "dst"))
        incoming[edge["dst"]].append(_edge_view(edge, names, "src"))

    def metadata(name: str, stage: dict[str, Any] | None) -> dict[str, Any]:
        labels = {"app.kubernetes.io/managed-by": "hetc", "app.kubernetes.io/part-of": part_of}
        if stage is not None:
            labels.update({"app.kubernetes.io/component": label_value(stage["kind"]),
                           "hetc.dev/stage": names[stage["id"]]})
            if stage["device"]:
                labels[DEVICE_CLASS_LABEL] = label_value(stage["device"])
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if namespace:
            meta["namespace"] = namespace
        return meta

    from hetc.bundle.speech import SPEECH_KEY, serves_speech, speech_server
    from hetc.bundle.vllm import disaggregated, image_of, kv_env, model_lengths, pd_phases, serves_vllm, vendor_key, vllm_args

    def has_server(stage: dict[str, Any]) -> bool:  # an engine server of its own: vLLM, or a speech server
        return serves_vllm(stage) or serves_speech(stage)

    pairs = pd_phases(plan)
    lengths = model_lengths(plan)
    by_id = {s["id"]: s for s in plan["stages"]}
    one_server = {p["id"]: d["id"] for p, d in pairs.values() if not disaggregated(p, d)}  # prefill -> decode
    roles = {s["id"]: role for p, d in pairs.values() if disaggregated(p, d)
             for s, role in ((p, "kv_producer"), (d, "kv_consumer"))}
    extra_replicas = {d: by_id[p]["replicas"] for p, d in one_server.items()}
    files: dict[str, list[dict]] = {}
    graph = {
        "plan": plan["name"],
        "spec_sha256": plan["provenance"]["spec_sha256"],
        "stages": [{"id": s["id"], "node": s["node"], "kind": s["kind"], "device": s["device"],
                    "object": names[s["id"]] if needs_process(s) else None} for s in plan["stages"]],
        "edges": plan["edges"],
    }
    graph_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(f"{part_of}-graph", None),
                 "data": {"graph.json": _json(graph)}}
    files[f"{part_of}-graph.yaml"] = [graph_map]

    url = {s["id"]: f"http://{names[s['id']]}:{STAGE_PORT}/v1" for s in plan["stages"]}
    endpoints: dict[str, str] = {}  # model id -> the OpenAI endpoint the runtime calls
    for stage in plan["stages"]:
        if has_server(stage) and stage["id"] not in one_server:
            endpoints.setdefault(stage["model"]["id"], url[stage["id"]])
    for node, (prefill, decode) in sorted(pairs.items()):
        if disaggregated(prefill, decode):
            router, objects = _router_objects(plan, node, names[decode["id"]], url[prefill["id"]], url[decode["id"]],
                                              image_of(None, plan, images), metadata)
            files[f"{router}.yaml"] = objects
            endpoints[decode["model"]["id"]] = f"http://{router}:{STAGE_PORT}/v1"
    # the runtime always runs: its router walks the graph, even when engines serve every stage
    runtime_stages = [s for s in plan["stages"] if needs_process(s) and not has_server(s)]
    stage_endpoints = {s["id"]: url[s["id"]] for s in plan["stages"] if has_server(s) and s["service"].get("api")}
    files[f"{part_of}-runtime.yaml"] = _runtime_objects(plan, runtime_stages, endpoints, stage_endpoints,
                                                        image_of(None, plan, images), metadata)

    for stage in plan["stages"]:
        if not has_server(stage) or stage["id"] in one_server:
            continue  # the runtime runs it, or the decode server serves both phases
        name = names[stage["id"]]
        selector = {"app.kubernetes.io/part-of": part_of, "hetc.dev/stage": name}
        model = stage["model"] or {}
        config = {
            "HETC_PLAN": plan["name"],
            "HETC_STAGE_ID": stage["id"],
            "HETC_STAGE_KIND": stage["kind"],
            "HETC_DEVICE": stage["device"],
            "HETC_ENGINE": stage["engine"] or "",
            "HETC_MODEL": model.get("name", ""),
            "HETC_KV_ROLE": roles.get(stage["id"], ""),
            "HETC_MODEL_PRECISION": model.get("precision", ""),
            "HETC_TP": str(stage["tp"]),
            "HETC_PP": str(stage["pp"]),
            "HETC_MAX_BATCH": str(stage["batch"]),
            "HETC_BUNDLE_DIR": BUNDLE_MOUNT_DIR,
            "HETC_KERNELS": ",".join(stage["kernels"]),
            "stage.json": _json(stage),
        }
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(f"{name}-config", stage),
                      "data": config}
        cores, memory_gb = host_resources(stage)
        requests = {"cpu": _cpu_quantity(cores), "memory": _memory_quantity(memory_gb)}
        limits: dict[str, str] = {"memory": _memory_quantity(memory_gb)}
        tolerations = []
        device_resource = accelerator_resource(stage)
        if device_resource is not None:
            requests[device_resource] = str(stage["devices_per_replica"])
            limits[device_resource] = str(stage["devices_per_replica"])
            tolerations.append({"key": device_resource, "operator": "Exists", "effect": "NoSchedule"})
        env_from_keys = sorted(k for k in config if k.startswith("HETC_"))
        if serves_speech(stage):  # the speech server's own image, its fixed port (the Service maps STAGE_PORT)
            image, port = speech_server(stage, vendor_key(stage), images.get(SPEECH_KEY))
            server: dict[str, Any] = {"image": image}
        else:
            port = STAGE_PORT
            server = {"image": image_of(stage, plan, images),
                      "args": vllm_args(plan, stage, STAGE_PORT, roles.get(stage["id"]), pairs, lengths)}
        container: dict[str, Any] = {
            "name": "stage",
            **server,
            "env": [{"name": key, "valueFrom": {"configMapKeyRef": {"name": f"{name}-config", "key": key}}}
                    for key in env_from_keys] + [{"name": k, "value": v} for k, v in sorted(kv_env(plan, stage, pairs).items())],
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "resources": {"requests": requests, "limits": limits},
            "volumeMounts": [{"name": "hetc-config", "mountPath": CONFIG_MOUNT_DIR, "readOnly": True}],
        }
        volumes: list[dict[str, Any]] = [{"name": "hetc-config", "configMap": {"name": f"{name}-config"}}]
        if bundle_claim:
            container["volumeMounts"].append({"name": "hetc-bundle", "mountPath": BUNDLE_MOUNT_DIR, "readOnly": True})
            volumes.append({"name": "hetc-bundle",
                            "persistentVolumeClaim": {"claimName": bundle_claim, "readOnly": True}})
        pod_spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
        affinity = _node_affinity(stage)
        if affinity is not None:
            pod_spec["affinity"] = affinity
        if tolerations:
            pod_spec["tolerations"] = tolerations
        annotations = {
            "hetc.dev/plan": _json(plan["name"]),
            "hetc.dev/spec-sha256": plan["provenance"]["spec_sha256"],
            "hetc.dev/stage-id": stage["id"],
            "hetc.dev/node": _json(stage["node"]),
            "hetc.dev/upstream": _json(incoming[stage["id"]]),
            "hetc.dev/downstream": _json(outgoing[stage["id"]]),
            "hetc.dev/predicted": _json(stage["predicted"]),
            "hetc.dev/placement": _json({k: stage[k] for k in ("device", "replicas", "tp", "pp", "batch",
                                                                "devices_per_replica", "engine")}),
        }
        deployment_meta = metadata(name, stage)
        deployment_meta["annotations"] = annotations
        template_meta = {"labels": dict(deployment_meta["labels"]),
                         "annotations": {"hetc.dev/stage-id": stage["id"]}}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": deployment_meta,
            "spec": {"replicas": stage["replicas"] + extra_replicas.get(stage["id"], 0),
                     "selector": {"matchLabels": selector},
                     "template": {"metadata": template_meta, "spec": pod_spec}},
        }
        files[f"{name}.yaml"] = [config_map, deployment, _service(metadata(name, stage), selector)]
    return dict(sorted(files.items()))


def _yaml_documents(documents: list[dict]) -> str:
    from hetc.yaml_text import to_yaml

    return "---\n".join(to_yaml(doc) for doc in documents)


def render_kubernetes(plan: dict[str, Any], **options: Any) -> dict[str, str]:
    """File name -> YAML text (including kustomization.yaml, so `kubectl apply -k DIR` works)."""
    manifests = kubernetes_manifests(plan, **options)
    rendered = {name: _yaml_documents(docs) for name, docs in manifests.items()}
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": sorted(manifests)}
    rendered["kustomization.yaml"] = _yaml_documents([kustomization])
    return dict(sorted(rendered.items()))


def write_kubernetes(plan: dict[str, Any], out_dir: str | Path, **options: Any) -> list[Path]:
    """Write the manifests into out_dir (created if needed); return the written paths, sorted."""
    from hetc.bundle.writer import write_text_files

    return write_text_files(out_dir, render_kubernetes(plan, **options))
