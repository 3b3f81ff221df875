"""The router in-process, without Ray (`hetc serve BUNDLE --local`): every stage is a StageWorker here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hetc.runtime.bindings import validate_bindings
from hetc.runtime.metrics import RuntimeMetrics
from hetc.runtime.router import Router
from hetc.runtime.workers import StageWorker


def load_bundle(bundle: str | Path, bind: str | Path | None) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(plan, bindings, bundle dir): the plan validated against its schema, the bindings against the plan."""
    from hetc.bundle.schema import load_plan

    bundle = Path(bundle).resolve()
    plan = load_plan(bundle)
    return plan, validate_bindings(plan, bind), bundle if bundle.is_dir() else bundle.parent


class LocalExecutor:
    def __init__(self, plan: dict[str, Any], bindings: dict[str, Any], bundle_dir: Path):
        self.workers = {s["id"]: StageWorker(s, bindings, str(bundle_dir)) for s in plan["stages"]}

    def stream(self, stage_id: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return self.workers[stage_id].stream(payload)


def local_router(bundle: str | Path, bind: str | Path | None = None) -> Router:
    plan, bindings, bundle_dir = load_bundle(bundle, bind)
    return Router(plan, bindings, LocalExecutor(plan, bindings, bundle_dir), RuntimeMetrics(plan))


def serve_local(router: Router, host: str, port: int, on_listening=None) -> None:
    """Run the HTTP API with uvicorn until interrupted."""
    import asyncio

    import uvicorn

    from hetc.runtime.http_app import starlette_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = uvicorn.Config(starlette_app(router), host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and on_listening is not None:
            sockets = [s for srv in server.servers for s in srv.sockets]
            on_listening(sockets[0].getsockname()[1] if sockets else port)
        await task

    asyncio.run(main())
