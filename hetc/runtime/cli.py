"""`hetc serve BUNDLE [--bind FILE] [--local]`: run a bundle's agent and print where it listens."""

from __future__ import annotations

import time
from pathlib import Path

import click

from hetc.errors import HetcError, Loc, printable

SERVE_EXTRA = 'hetc serve needs the serve extra: pip install "hetc[serve]"'


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise HetcError(SERVE_EXTRA, Loc("hetc serve"))


@click.command("serve")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--bind", "bind", type=click.Path(path_type=Path), default=None,
              help="Bindings file: model endpoints, tools, indexes, code callables.")
@click.option("--local", is_flag=True, help="Run the router in this process, without Ray.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--num-cpus", type=click.FloatRange(min=0.5), default=None,
              help="CPUs of the local Ray instance (default: all).")
def serve_command(bundle: Path, bind: Path | None, local: bool, host: str, port: int, num_cpus: float | None) -> None:
    """Run BUNDLE's agent: on a local Ray instance (Ray Serve), or in-process with --local."""
    for module in ("aiohttp", "starlette", "prometheus_client"):
        _require(module)
    from hetc.runtime.local import load_bundle

    load_bundle(bundle, bind)  # every binding error, located, before anything starts
    if local:
        _require("uvicorn")
        from hetc.runtime.local import local_router, serve_local

        router = local_router(bundle, bind)
        serve_local(router, host, port, on_listening=lambda bound: _listening(host, bound, "in-process"))
        return
    _require("ray")
    import ray
    from ray import serve

    from hetc.runtime.serve import build_app

    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING")
    serve.start(http_options={"host": host, "port": port})
    args = {"plan": str(bundle.resolve()), "bind": str(bind.resolve()) if bind else None, "local_resources": True}
    serve.run(build_app(args), name="hetc", route_prefix="/", blocking=False)
    _listening(host, port, "Ray Serve")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


def _listening(host: str, port: int, how: str) -> None:
    click.echo(printable(f"listening on http://{host}:{port}/v1/agent ({how}); metrics on http://{host}:{port}/metrics"))
