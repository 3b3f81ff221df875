"""Kubernetes and Ray Serve exporters: manifests validate against the Kubernetes OpenAPI schema
(kubernetes-validate, bundled schemas, offline) and Ray's own Serve config model."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from hetc.bundle.kubernetes import (
    host_resources,
    kubernetes_manifests,
    render_kubernetes,
    stage_names,
    write_kubernetes,
)
from hetc.bundle.names import dns_label
from hetc.bundle.ray import deployment_options, render_ray, serve_config
from hetc.bundle.schema import load_plan
from hetc.bundle.vllm import runtime_image
from hetc.errors import HetcError
from hetc.runtime.bindings import endpoint_env

PLANS = sorted((Path(__file__).parent / "data" / "plans").glob("*.json"))
K8S_VERSION = "1.30"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def plan_named(stem: str) -> dict:
    return load_plan(Path(__file__).parent / "data" / "plans" / f"{stem}.json")


def objects(plan: dict, **options) -> list[dict]:
    return [doc for docs in kubernetes_manifests(plan, **options).values() for doc in docs]


def deployment_of(plan: dict, stage_id: str) -> dict:
    name = stage_names(plan)[stage_id]
    return next(o for o in objects(plan) if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def container_of(plan: dict, stage_id: str) -> dict:
    return deployment_of(plan, stage_id)["spec"]["template"]["spec"]["containers"][0]


def node_term(plan: dict, stage_id: str) -> dict:
    pod = deployment_of(plan, stage_id)["spec"]["template"]["spec"]
    return pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]


# ------------------------------------------------------------------------------------------ Kubernetes


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_every_object_validates_against_the_kubernetes_openapi_schema(path):
    plan = load_plan(path)
    docs = objects(plan, namespace="agents", bundle_claim="agent-bundle")
    assert {d["kind"] for d in docs} == {"ConfigMap", "Deployment", "Service"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert DNS_1035.match(doc["metadata"]["name"]) and len(doc["metadata"]["name"]) <= 63
        for key, value in doc["metadata"]["labels"].items():
            assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)


def test_the_validator_does_reject_a_broken_deployment():
    doc = copy.deepcopy(deployment_of(plan_named("voice_agent"), "llm.decode"))
    doc["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def runtime_deployment(plan: dict) -> dict:
    return next(o for o in objects(plan) if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-runtime"))


def test_engine_stages_get_a_server_and_every_other_stage_runs_in_the_runtime():
    plan = plan_named("voice_agent")
    docs = objects(plan)
    deployments = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Deployment")
    services = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Service")
    names = stage_names(plan)
    # stt, prefill and decode are vLLM servers; the P::D pair gets its router; tts and the tool run in the runtime
    expected = sorted([names["stt"], names["llm.prefill"], names["llm.decode"], f"{names['llm.decode']}-pd-router",
                       "voice-agent-runtime"])
    assert deployments == services == expected
    assert deployment_of(plan, "llm.prefill")["spec"]["replicas"] == 4
    runtime = runtime_deployment(plan)
    assert json.loads(runtime["metadata"]["annotations"]["hetc.dev/stages"]) == ["search.compute", "search.lookup", "tts"]
    assert runtime["spec"]["template"]["spec"]["containers"][0]["image"] == runtime_image(plan)


def test_vendor_device_plugin_resources_and_product_affinity():
    voice = plan_named("voice_agent")
    prefill = container_of(voice, "llm.prefill")["resources"]
    assert prefill["limits"]["nvidia.com/gpu"] == prefill["requests"]["nvidia.com/gpu"] == "2"
    assert node_term(voice, "llm.prefill") == {"key": "nvidia.com/gpu.product", "operator": "In",
                                               "values": ["NVIDIA-H100-80GB-HBM3"]}
    assert node_term(voice, "llm.decode")["values"] == ["NVIDIA-B200"]
    deployment = runtime_deployment(voice)
    runtime = deployment["spec"]["template"]["spec"]
    # tts, the tool's HTTP client and its compute step share the runtime pods: together they hold every core
    # the plan gave those stages
    cores = sum(host_resources(s)[0] * s["replicas"] for s in voice["stages"] if s["id"] in
                ("tts", "search.lookup", "search.compute"))
    per_pod = runtime["containers"][0]["resources"]["requests"]["cpu"]
    per_pod = float(per_pod[:-1]) / 1000 if per_pod.endswith("m") else float(per_pod)
    assert cores <= per_pod * deployment["spec"]["replicas"] < cores + 0.001 * deployment["spec"]["replicas"]
    assert runtime["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["intel-xeon-8480"]

    rag = plan_named("rag_router")
    gaudi = container_of(rag, "llm.prefill")["resources"]
    assert gaudi["limits"]["habana.ai/gaudi"] == "1"
    assert node_term(rag, "llm.prefill")["values"] == ["intel-gaudi3"]
    assert container_of(rag, "llm.decode")["resources"]["limits"]["amd.com/gpu"] == "1"
    assert node_term(rag, "llm.decode") == {"key": "amd.com/gpu.device-id", "operator": "In", "values": ["74a1", "74a9"]}


def test_config_points_at_kernels_and_model():
    voice = plan_named("voice_agent")
    name = stage_names(voice)["llm.prefill"]
    config = next(o for o in objects(voice) if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-config")
    assert config["data"]["HETC_KERNELS"] == "cuda/sm_90/kv_pack_fp8.ptx,cuda/sm_90/rmsnorm.ptx"
    assert config["data"]["HETC_MODEL"] == "llama-3-70b" and config["data"]["HETC_TP"] == "2"
    assert json.loads(config["data"]["stage.json"])["id"] == "llm.prefill"
    container = container_of(voice, "llm.prefill")
    env = {e["name"]: e["valueFrom"]["configMapKeyRef"] for e in container["env"]}
    assert env["HETC_KERNELS"] == {"name": f"{name}-config", "key": "HETC_KERNELS"}


def test_vllm_flags_follow_the_plan():
    voice = plan_named("voice_agent")
    args = container_of(voice, "llm.prefill")["args"]
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--model"] == "meta-llama/Meta-Llama-3-70B-Instruct"  # the preset's Hugging Face repo
    assert flags["--dtype"] == "bfloat16" and flags["--quantization"] == "fp8" and flags["--kv-cache-dtype"] == "fp8"
    assert flags["--tensor-parallel-size"] == "2" and flags["--pipeline-parallel-size"] == "1"
    assert flags["--max-num-seqs"] == "4"  # the plan's batch
    prefill = next(s for s in voice["stages"] if s["id"] == "llm.prefill")
    decode = next(s for s in voice["stages"] if s["id"] == "llm.decode")
    assert flags["--max-model-len"] == str(prefill["service"]["input_tokens"] + decode["service"]["output_tokens"])
    stt = dict(zip(container_of(voice, "stt")["args"][::2], container_of(voice, "stt")["args"][1::2], strict=False))
    assert stt["--model"] == "openai/whisper-large-v3" and stt["--dtype"] == "float16"


def kv_config(plan: dict, stage_id: str) -> dict:
    args = container_of(plan, stage_id)["args"]
    return json.loads(args[args.index("--kv-transfer-config") + 1])


def test_disaggregated_pairs_get_a_kv_connector_and_a_router():
    voice = plan_named("voice_agent")  # H100 prefill, B200 decode: NIXL GPU to GPU (the plan's kv_path)
    assert kv_config(voice, "llm.prefill") == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    assert kv_config(voice, "llm.decode") == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    names = stage_names(voice)
    router = next(o for o in objects(voice) if o["kind"] == "Deployment"
                  and o["metadata"]["name"] == f"{names['llm.decode']}-pd-router")
    container = router["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "hetc.runtime.pd_proxy"]
    assert container["args"][:4] == ["--prefill", f"http://{names['llm.prefill']}:8000/v1",
                                     "--decode", f"http://{names['llm.decode']}:8000/v1"]
    runtime_env = runtime_deployment(voice)["spec"]["template"]["spec"]["containers"][0]["env"]
    model = next(s for s in voice["stages"] if s["id"] == "llm.decode")["model"]["id"]
    assert {"name": endpoint_env(model), "value": f"http://{names['llm.decode']}-pd-router:8000/v1"} in runtime_env
    rag = plan_named("rag_router")  # Gaudi prefill, MI300X decode (planned at --kv-paths any): host DRAM staging
    assert kv_config(rag, "llm.prefill") == {"kv_connector": "NixlConnector", "kv_role": "kv_both",
                                             "kv_buffer_device": "cpu"}


def test_user_node_ids_never_reach_names_or_labels_but_survive_in_annotations():
    rag = plan_named("rag_router")
    docs = objects(rag)
    for doc in docs:
        visible = json.dumps([doc["metadata"]["name"], doc["metadata"]["labels"]])
        for raw in ("Web Search!", "RAG Assistant (prod)", 'vector "docs" store'):
            assert raw not in visible
    decode = deployment_of(rag, "llm.decode")["metadata"]["annotations"]
    assert json.loads(decode["hetc.dev/node"]) == next(s["node"] for s in rag["stages"] if s["id"] == "llm.decode")
    upstream = json.loads(decode["hetc.dev/upstream"])
    assert [u["stage"] for u in upstream] == ["llm.kv"]
    graph = next(d for d in docs if d["metadata"]["name"].endswith("-graph"))
    graph_json = json.loads(graph["data"]["graph.json"])
    assert len(graph_json["edges"]) == len(rag["edges"])
    assert "Web Search!" in {s["node"] for s in graph_json["stages"]}


def test_names_stay_unique_and_short_whatever_the_stage_ids():
    plan = copy.deepcopy(plan_named("voice_agent"))
    stt = plan["stages"][1]
    clone = copy.deepcopy(stt)
    clone["id"] = "s.t.t"
    clone2 = copy.deepcopy(stt)
    clone2["id"] = "s_t_t"
    clone3 = copy.deepcopy(stt)
    clone3["id"] = "9" + "x" * 120
    plan["stages"][2:2] = [clone, clone2, clone3]
    names = stage_names(plan)
    assert len(set(names.values())) == len(names)
    assert all(DNS_1035.match(n) and len(n) <= 63 for n in names.values())
    for doc in objects(plan):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_output_is_deterministic(tmp_path):
    plan = plan_named("voice_agent")
    first = render_kubernetes(plan)
    assert first == render_kubernetes(copy.deepcopy(plan))
    assert list(first) == sorted(first)
    kustomization = yaml.safe_load(first["kustomization.yaml"])
    assert kustomization["resources"] == sorted(n for n in first if n != "kustomization.yaml")
    written = write_kubernetes(plan, tmp_path / "k8s")
    assert [p.name for p in written] == list(first)
    assert all(p.read_text() == first[p.name] for p in written)


# ------------------------------------------------------------------------------------------ Ray Serve


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_serve_config_validates_against_rays_own_schema(path):
    from ray.serve._private.config import ReplicaConfig
    from ray.serve.schema import ServeDeploySchema

    plan = load_plan(path)
    config = yaml.safe_load(render_ray(plan)["serve.yaml"])
    parsed = ServeDeploySchema.model_validate(config)  # what `serve deploy` parses the file with
    deployments = parsed.applications[0].deployments
    expected = [s for s in plan["stages"] if s["kind"] not in ("input", "output", "kv_transfer")]
    assert len(deployments) == len(expected)
    for raw in config["applications"][0]["deployments"]:
        # the replica-level checks Serve applies when it builds the deployment (resources fit bundle 0, ...)
        ReplicaConfig.create("hetc_runtime.serve:Stage", ray_actor_options=raw["ray_actor_options"],
                             placement_group_bundles=raw.get("placement_group_bundles"),
                             placement_group_strategy=raw.get("placement_group_strategy"))


def test_ray_schema_rejects_a_broken_config():
    from ray.serve.schema import ServeDeploySchema

    config = serve_config(plan_named("voice_agent"))
    config["applications"][0]["deployments"][0]["num_replicas"] = -3
    with pytest.raises(Exception, match="num_replicas"):
        ServeDeploySchema.model_validate(config)


def test_a_replica_that_calls_an_engine_reserves_no_accelerator():
    # every LLM stage of these plans is served by a vLLM server the replica only calls over HTTP: the replica
    # holding the GPU, HPU or placement group too would strand it
    for name in ("voice_agent", "rag_router"):
        plan = plan_named(name)
        deployments = {d["name"]: d for d in serve_config(plan)["applications"][0]["deployments"]}
        for stage in plan["stages"]:
            if stage["engine"] not in (None, "cpu-runtime"):
                deployment = deployments[dns_label(stage["id"])]
                assert deployment["ray_actor_options"] == {"num_cpus": 0.5, "memory": 512 * 1024**2}, stage["id"]
                assert "placement_group_bundles" not in deployment
    voice = {d["name"]: d for d in serve_config(plan_named("voice_agent"))["applications"][0]["deployments"]}
    assert voice["llm-decode"]["num_replicas"] == 1 and voice["llm-decode"]["max_ongoing_requests"] == 64


def _in_replica(plan: str, stage_id: str) -> dict:
    """A stage of `plan` as if hetc's runtime ran it on its accelerator (its work in the replica)."""
    stage = next(s for s in plan_named(plan)["stages"] if s["id"] == stage_id)
    return deployment_options({**stage, "engine": "cpu-runtime"})


def test_ray_accelerators_and_resources_of_a_replica_that_runs_the_work():
    from ray.util.accelerators import accelerators

    constants = {getattr(accelerators, n) for n in dir(accelerators) if n.isupper()}
    decode = _in_replica("voice_agent", "llm.decode")
    assert decode["ray_actor_options"]["num_gpus"] == 1
    assert decode["ray_actor_options"]["accelerator_type"] == accelerators.NVIDIA_B200
    prefill = _in_replica("voice_agent", "llm.prefill")
    assert prefill["num_replicas"] == 4 and prefill["placement_group_strategy"] == "STRICT_PACK"
    assert [b["GPU"] for b in prefill["placement_group_bundles"]] == [1.0, 1.0]
    assert all(b[f"accelerator_type:{accelerators.NVIDIA_H100}"] > 0 for b in prefill["placement_group_bundles"])
    voice = {d["name"]: d for d in serve_config(plan_named("voice_agent"))["applications"][0]["deployments"]}
    assert "num_gpus" not in voice["tts"]["ray_actor_options"]
    assert _in_replica("rag_router", "llm.prefill")["ray_actor_options"]["resources"] == {"HPU": 1}
    assert _in_replica("rag_router", "llm.prefill")["ray_actor_options"]["accelerator_type"] == "Intel-GAUDI3"
    assert _in_replica("rag_router", "llm.decode")["ray_actor_options"]["accelerator_type"] == \
        accelerators.AMD_INSTINCT_MI300x
    assert {_in_replica("voice_agent", "stt")["ray_actor_options"]["accelerator_type"]} <= constants


def test_ray_output_is_deterministic():
    plan = plan_named("rag_router")
    assert render_ray(plan) == render_ray(copy.deepcopy(plan))


# ------------------------------------------------------------------------------------------ CLI


def test_deploy_command_writes_both_targets(tmp_path):
    from hetc.cli.deploy import deploy_command

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "plan.json").write_text((Path(__file__).parent / "data" / "plans" / "voice_agent.json").read_text())
    runner = CliRunner()
    k8s = runner.invoke(deploy_command, [str(bundle), "--target", "kubernetes", "-o", str(tmp_path / "k8s"),
                                         "--image", "nvidia=registry.example/vllm:1"])
    assert k8s.exit_code == 0, k8s.output
    text = (tmp_path / "k8s" / "voice-agent-llm-decode.yaml").read_text()
    assert "image: registry.example/vllm:1" in text
    ray = runner.invoke(deploy_command, [str(bundle), "--target", "ray-serve", "-o", str(tmp_path / "ray")])
    assert ray.exit_code == 0 and (tmp_path / "ray" / "serve.yaml").is_file()


def test_deploy_command_reports_a_bad_plan_with_exit_2(tmp_path):
    from hetc.cli.deploy import deploy_command

    plan = json.loads((Path(__file__).parent / "data" / "plans" / "voice_agent.json").read_text())
    plan["stages"][1]["replicas"] = -1
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps(plan))
    result = CliRunner().invoke(deploy_command, [str(bad), "--target", "kubernetes", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "$.stages[1].replicas" in result.output
    bad_image = CliRunner().invoke(deploy_command, [str(Path(__file__).parent / "data" / "plans" / "voice_agent.json"),
                                                    "--target", "kubernetes", "-o", str(tmp_path / "o"),
                                                    "--image", "novalue"])
    assert bad_image.exit_code == 2 and "KEY=IMAGE" in bad_image.output
    unknown = CliRunner().invoke(deploy_command, [str(Path(__file__).parent / "data" / "plans" / "voice_agent.json"),
                                                  "--target", "kubernetes", "-o", str(tmp_path / "k"),
                                                  "--image", "vllm=x/y:1"])
    assert unknown.exit_code == 2 and "'vllm' is not one of nvidia, amd, gaudi, cpu, runtime, speech" in unknown.output


# ------------------------------------------------------------------------- every example's Kubernetes export

EXAMPLE_SPECS = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml")) + [
    Path(__file__).parents[1] / "examples" / "cpu-helpdesk" / "agent.yaml"]


@pytest.fixture(scope="module")
def example_bundles():
    from hetc.compiler import CompileOptions, compile_spec

    return {spec.parent.name if spec.name == "agent.yaml" else spec.stem: compile_spec(str(spec), CompileOptions())
            for spec in EXAMPLE_SPECS}


def test_every_example_exports_runnable_servers(example_bundles):
    from hetc.bundle.speech import SPEECH_SERVERS
    from hetc.bundle.vllm import VLLM_IMAGES, disaggregated, pd_phases

    speech_images = [image for _, by_vendor in SPEECH_SERVERS.values() for image in by_vendor.values()]
    for name, result in example_bundles.items():
        plan = result.plan
        docs = objects(plan)
        for doc in docs:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        containers = [c for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]]
        for container in containers:  # public vLLM images, or the image the bundle's Dockerfile builds
            assert container["image"] in (*VLLM_IMAGES.values(), *speech_images, runtime_image(plan)), \
                (name, container["image"])
            if container["image"] in VLLM_IMAGES.values():
                model = container["args"][container["args"].index("--model") + 1]
                assert re.fullmatch(r"[\w.-]+/[\w.-]+", model), (name, model)  # a Hugging Face repo id
        dockerfile = result.files["deploy/runtime/Dockerfile"].decode()
        assert f"-t {runtime_image(plan)} ." in dockerfile and f'"hetc[serve]=={plan["provenance"]["hetc_version"]}"' \
            in dockerfile and "COPY . /opt/hetc/bundle" in dockerfile
        names = stage_names(plan)
        deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
        for prefill, decode in pd_phases(plan).values():
            if disaggregated(prefill, decode):
                assert kv_config(plan, prefill["id"]) == kv_config(plan, decode["id"]) == \
                    decode["kv_path"]["kv_transfer_config"]
                assert f"{names[decode['id']]}-pd-router" in deployments
            else:  # the same class for both phases: one server
                assert names[prefill["id"]] not in deployments and "--kv-transfer-config" not in \
                    container_of(plan, decode["id"])["args"]


def test_every_stage_an_engine_serves_for_the_runtime_has_a_server_and_an_endpoint(example_bundles):
    """Every stage whose plan service names the engine API the runtime calls (embeddings, safety verdict,
    rerank, transcription, speech) gets a server Deployment and Service of its own, and the runtime the URL of
    that Service for the stage; the voice agent's stt and tts stages are among them."""
    from hetc.runtime.bindings import stage_endpoint_env

    checked = set()
    for name, result in example_bundles.items():
        plan = result.plan
        docs = objects(plan)
        names = stage_names(plan)
        deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
        services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
        env = {e["name"]: e["value"] for e in runtime_deployment(plan)["spec"]["template"]["spec"]["containers"][0]["env"]}
        runtime_stages = json.loads(runtime_deployment(plan)["metadata"]["annotations"]["hetc.dev/stages"])
        for stage in plan["stages"]:
            if not stage["service"].get("api"):
                continue
            server = names[stage["id"]]
            assert server in deployments and server in services, (name, stage["id"])
            assert env[stage_endpoint_env(stage["id"])] == f"http://{server}:8000/v1", (name, stage["id"])
            assert stage["id"] not in runtime_stages, (name, stage["id"])
            checked.add((name, stage["id"]))
    assert {("voice-agent", "stt"), ("voice-agent", "tts")} <= checked


def test_the_voice_agents_speech_stages_get_whisper_on_vllm_and_a_kokoro_speech_server(example_bundles):
    plan = example_bundles["voice-agent"].plan
    stages = {s["id"]: s for s in plan["stages"]}
    assert stages["stt"]["service"]["api"] == "transcription" and stages["tts"]["service"]["api"] == "speech"
    stt = container_of(plan, "stt")
    assert stt["args"][:2] == ["--model", "openai/whisper-large-v3"] and stt["image"].startswith("vllm/vllm-openai:")
    assert stt["args"][stt["args"].index("--max-model-len") + 1] == "448"  # Whisper's decoder context
    tts = container_of(plan, "tts")
    # Kokoro-FastAPI bakes the model in and listens on 8880; the Service's port 8000 targets it by name
    assert tts["image"] == "ghcr.io/remsky/kokoro-fastapi-gpu:latest" and "args" not in tts
    assert tts["ports"] == [{"name": "http", "containerPort": 8880, "protocol": "TCP"}]
    assert tts["resources"]["requests"]["nvidia.com/gpu"] == "1"


def test_a_speech_stage_without_a_documented_server_stops_the_export(example_bundles):
    plan = copy.deepcopy(example_bundles["voice-agent"].plan)
    tts = next(s for s in plan["stages"] if s["id"] == "tts")
    tts.update(device="intel-gaudi3", vendor="intel", device_kind="accelerator", engine="optimum-habana")
    with pytest.raises(HetcError, match="no OpenAI-compatible /v1/audio/speech server for model \"kokoro-82m\" on gaudi"):
        kubernetes_manifests(plan)
    tts.update(device="intel-xeon-8480", vendor="intel", device_kind="cpu", engine="torch")
    assert container_of(plan, "tts")["image"] == "ghcr.io/remsky/kokoro-fastapi-cpu:latest"


def test_an_image_given_for_speech_serves_every_tts_stage_also_where_hetc_knows_none(example_bundles):
    """--image speech=IMAGE: a mirror of Kokoro-FastAPI, or the user's own /v1/audio/speech server on port 8880."""
    plan = copy.deepcopy(example_bundles["voice-agent"].plan)
    tts = next(s for s in plan["stages"] if s["id"] == "tts")
    images = {"speech": "registry.internal/tts:1"}
    for device in ({}, dict(device="intel-gaudi3", vendor="intel", device_kind="accelerator", engine="optimum-habana")):
        tts.update(device)
        name = stage_names(plan)["tts"]
        containers = [c for d in objects(plan, images=images) if d["kind"] == "Deployment" and d["metadata"]["name"] == name
                      for c in d["spec"]["template"]["spec"]["containers"]]
        assert [(c["image"], c["ports"][0]["containerPort"]) for c in containers] == [("registry.internal/tts:1", 8880)]


def test_cpu_example_serves_both_phases_from_one_vllm_cpu_server(example_bundles):
    plan = example_bundles["cpu-helpdesk"].plan
    stages = {s["id"]: s for s in plan["stages"]}
    decode = deployment_of(plan, "agent.decode")
    assert decode["spec"]["replicas"] == stages["agent.prefill"]["replicas"] + stages["agent.decode"]["replicas"]
    assert decode["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:")
    runtime = runtime_deployment(plan)
    assert json.loads(runtime["metadata"]["annotations"]["hetc.dev/stages"]) == sorted(
        s for s, stage in stages.items() if stage["kind"] not in ("input", "output", "kv_transfer", "prefill", "decode"))


def test_the_kubernetes_export_reads_the_stages_a_bounded_number_of_times(tmp_path, monkeypatch):
    """Each vLLM stage used to rescan every stage for its P/D pair, KV environment and model length: the export
    was quadratic in the graph (40 s of CPU at 10,000 nodes). Counted, not timed: serves_vllm runs a bounded
    number of times per stage."""
    import importlib.util

    import hetc.bundle.vllm as deploy_vllm
    from hetc.compiler import CompileOptions, compile_spec

    bench = Path(__file__).resolve().parents[1] / "bench" / "compile_scaling.py"
    module_spec = importlib.util.spec_from_file_location("compile_scaling", bench)
    scaling = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(scaling)
    spec = tmp_path / "scale.yaml"
    spec.write_text(scaling.synthetic_spec(120, forward_branches=False))
    plan = compile_spec(str(spec), CompileOptions(codegen=False, solver="heuristic")).plan
    llm_stages = [s for s in plan["stages"] if deploy_vllm.serves_vllm(s)]
    assert len(llm_stages) >= 20
    calls = [0]
    real = deploy_vllm.serves_vllm

    def counted(stage):
        calls[0] += 1
        return real(stage)

    monkeypatch.setattr(deploy_vllm, "serves_vllm", counted)
    render_kubernetes(plan)
    assert calls[0] <= 10 * len(plan["stages"]), (calls[0], len(plan["stages"]))
