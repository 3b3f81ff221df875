"""The runtime's HTTP API, the same in `--local` mode (uvicorn) and behind Ray Serve's proxy.

    POST .../v1/agent   {"input": "text"} or {"inputs": {"<input node>": "text"}}, optional "stream": true,
                        "deadline_ms"; header X-Request-Id (else one is made). JSON answer:
                        {"request_id", "outputs": {node: text}, "visits", "loops", "latency_ms"} (a request
                        a guardrail refused: "outputs": {} and "refused": {stage, node, verdict, categories});
                        errors:
                        {"error": {"type", "message", "stage", "request_id"}} with 400/502/504.
                        With "stream": true, server-sent events: `token` (LLM text as it is decoded), `stage`
                        (a stage finished), then `result` or `error`.
    GET  .../metrics    Prometheus text format (metrics.py)
    GET  .../healthz    {"ok": true, "plan": name}
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from hetc.runtime.router import RequestError, Router

MAX_BODY_BYTES = 1 << 20
STATUS = {"bad_request": 400, "deadline_exceeded": 504}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _error_response(kind: str, message: str, request_id: str, status: int = 400):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"type": kind, "message": message, "request_id": request_id, "stage": None}},
                        status_code=status)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=True)}\n\n"


async def handle(router: Router, request) -> Any:
    """Answer one HTTP request (a starlette Request) with a starlette Response."""
    import uuid

    from starlette.responses import JSONResponse, Response, StreamingResponse

    path = request.url.path.rstrip("/")
    if request.method == "GET" and path.endswith("/metrics"):
        body, content_type = router.metrics.exposition()
        return Response(body, media_type=content_type)
    if request.method == "GET" and path.endswith("/healthz"):
        return JSONResponse({"ok": True, "plan": router.plan["name"]})
    given_id = request.headers.get("x-request-id", "")
    request_id = given_id if _REQUEST_ID.match(given_id) else uuid.uuid4().hex
    if not (request.method == "POST" and path.endswith("/v1/agent")):
        return _error_response("not_found", "POST /v1/agent, GET /metrics or GET /healthz", request_id, 404)
    raw = await request.body()
    try:
        body = json.loads(raw) if len(raw) <= MAX_BODY_BYTES else None
    except ValueError:
        body = None
    inputs = body.get("inputs", body.get("input")) if isinstance(body, dict) else None
    valid = isinstance(inputs, str) or (isinstance(inputs, dict) and all(isinstance(v, str) for v in inputs.values()))
    deadline = body.get("deadline_ms") if isinstance(body, dict) else None
    if not valid or (deadline is not None and not (isinstance(deadline, (int, float)) and deadline > 0)):
        return _error_response("bad_request", 'expected JSON {"input": "text"} or {"inputs": {node: text}} '
                               "(at most 1 MiB), optional positive deadline_ms", request_id)
    if not body.get("stream"):
        try:
            return JSONResponse(await router.run(inputs, request_id=request_id, deadline_ms=deadline))
        except RequestError as error:
            return JSONResponse({"error": error.error}, status_code=STATUS.get(error.error["type"], 502))

    queue: asyncio.Queue = asyncio.Queue()

    async def produce() -> None:
        try:
            result = await router.run(inputs, request_id=request_id, deadline_ms=deadline, emit=queue.put_nowait)
            queue.put_nowait({"event": "result", **result})
        except RequestError as error:
            queue.put_nowait({"event": "error", "error": error.error})
        except Exception as exc:  # never leave the stream open
            queue.put_nowait({"event": "error", "error": {"type": "internal", "message": type(exc).__name__,
                                                          "request_id": request_id, "stage": None}})
        queue.put_nowait(None)

    async def events():
        task = asyncio.get_running_loop().create_task(produce())
        try:
            while (item := await queue.get()) is not None:
                yield _sse(item.pop("event"), item)
        finally:
            task.cancel()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"X-Request-Id": request_id})


def starlette_app(router: Router):
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def endpoint(request):
        return await handle(router, request)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
