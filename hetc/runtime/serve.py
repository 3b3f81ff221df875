"""The Ray Serve application of a bundle: `hetc.runtime.serve:build_app` (the import path serve.yaml names).

One deployment per stage that needs a process, with the plan's replicas, CPU/memory and accelerators (the
same mapping as hetc.bundle.ray, whose serve.yaml may override them), `@serve.batch` on stages the plan
batches (service type `batch`: a replica takes up to `max_batch` waiting calls at once), and an ingress that
runs the router (router.py) and answers HTTP (http_app.py). A call to a replica that died is retried once on
another replica (Ray Serve restarts the dead one) unless it already streamed tokens; otherwise the request
ends with a structured `stage_unavailable` error.

Arguments (`args:` in serve.yaml, or build_app's dict): `plan` (plan.json or the bundle folder; relative
paths resolve against the working directory), `bind` (a bindings file, optional), `local_resources`
(true: one replica per stage with a small CPU share, for a laptop or CI; the plan's sizes otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from hetc.runtime.local import load_bundle
from hetc.runtime.metrics import RuntimeMetrics
from hetc.runtime.router import ROUTER_KINDS, Router
from hetc.runtime.workers import StageWorker

log = logging.getLogger("hetc.runtime")
LOCAL_CPU_SHARE = 0.1  # CPUs per replica with local_resources: every stage fits on a 2-core machine
REPLICA_LOST = ("ActorDiedError", "ActorUnavailableError", "RayActorError", "DeploymentUnavailableError")


@serve.deployment
class Stage:
    """One plan stage: a StageWorker in a replica. Batched stages gather calls with @serve.batch."""

    def __init__(self, stage: dict[str, Any], bindings: dict[str, Any], bundle_dir: str):
        logging.basicConfig(level=logging.INFO)
        self.worker = StageWorker(stage, bindings, bundle_dir)
        service = stage["service"]
        self.batched = service["type"] == "batch" and int(service.get("max_batch", 1)) > 1
        if self.batched:
            self.batch_call.set_max_batch_size(int(service["max_batch"]))

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """serve.yaml's user_config repeats the stage for operators; the replica already has it."""

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def batch_call(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self.worker.call_batch(payloads)

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if self.batched:
            yield {"result": await self.batch_call(payload)}
            return
        async for event in self.worker.stream(payload):
            yield event


class RayExecutor:
    def __init__(self, handles: dict[str, Any]):
        self.handles = {stage: handle.options(stream=True) for stage, handle in handles.items()}

    async def stream(self, stage_id: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        for attempt in (1, 2):
            streamed = False
            try:
                async for event in self.handles[stage_id].stream.remote(payload):
                    streamed = streamed or "token" in event
                    yield event
                return
            except Exception as exc:
                name = type(exc).__name__
                lost = any(n in name for n in REPLICA_LOST) or any(n in str(exc)[:500] for n in REPLICA_LOST)
                log.warning("request %s stage %s: replica call failed (%s), attempt %d",
                            payload.get("request_id"), stage_id, name, attempt)
                if streamed or attempt == 2 or not lost:
                    message = "its replica was lost" if lost else f"the call failed ({name})"
                    yield {"result": {"error": {"type": "stage_unavailable", "stage": stage_id,
                                                "message": f"stage {stage_id}: {message}"}}}
                    return


@serve.deployment
class Ingress:
    """Runs the router for each HTTP request; stages are called through their deployment handles."""

    def __init__(self, plan: dict[str, Any], bindings: dict[str, Any], **handles: Any):
        logging.basicConfig(level=logging.INFO)
        stage_ids = {name: s["id"] for s in plan["stages"] for name in [_deployment_name(s["id"])]}
        executor = RayExecutor({stage_ids[name]: handle for name, handle in handles.items()})
        self.router = Router(plan, bindings, executor, RuntimeMetrics(plan))

    async def __call__(self, request):
        from hetc.runtime.http_app import handle

        return await handle(self.router, request)


def _deployment_name(stage_id: str) -> str:
    from hetc.bundle.kubernetes import dns_label

    return dns_label(stage_id)


def _options(stage: dict[str, Any], local: bool) -> dict[str, Any]:
    from hetc.bundle.ray import deployment_options

    if local:
        return {"num_replicas": 1, "ray_actor_options": {"num_cpus": LOCAL_CPU_SHARE},
                "max_ongoing_requests": deployment_options(stage)["max_ongoing_requests"]}
    return deployment_options(stage)


def build_app(args: dict[str, Any]):
    """The Serve application for a bundle (see the module docstring for `args`)."""
    plan, bindings, bundle_dir = load_bundle(args["plan"], args.get("bind"))
    local = bool(args.get("local_resources", False))
    handles = {}
    for stage in plan["stages"]:
        if stage["kind"] in ROUTER_KINDS:
            continue
        name = _deployment_name(stage["id"])
        handles[name] = Stage.options(name=name, **_options(stage, local)).bind(stage, bindings, str(bundle_dir))
    ingress_cpus = LOCAL_CPU_SHARE if local else 1
    return Ingress.options(name="ingress", ray_actor_options={"num_cpus": ingress_cpus}).bind(
        plan, bindings, **handles)
