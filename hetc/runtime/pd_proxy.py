"""The router in front of a disaggregated vLLM pair (the Kubernetes export's `<plan>-<node>-pd-router`).

vLLM's disaggregated prefill runs two servers joined by a KV connector: the prefill server (kv_producer)
computes a prompt's KV cache and the decode server (kv_consumer) receives it and generates. A client sends
each chat completion here; the router runs it on the prefill server with `max_tokens: 1` (the prompt's KV
cache is produced and handed to the connector), then sends the original request to the decode server and
streams its answer back. One OpenAI-compatible endpoint, so the hetc runtime does not know the difference.

    python -m hetc.runtime.pd_proxy --prefill http://P:8000/v1 --decode http://D:8000/v1 --port 8000
"""

from __future__ import annotations

import argparse
import json


def app(prefill: str, decode: str):
    import aiohttp
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def chat(request):
        body = await request.body()
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": {"message": "expected a JSON body"}}, status_code=400)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "x-request-id")}
        first = {**payload, "max_tokens": 1, "stream": False}
        first.pop("stream_options", None)
        session = aiohttp.ClientSession()
        try:
            async with session.post(f"{prefill}/chat/completions", json=first, headers=headers) as response:
                if response.status != 200:
                    await session.close()
                    return Response(await response.read(), status_code=response.status,
                                    media_type=response.content_type)
            answer = await session.post(f"{decode}/chat/completions", json=payload, headers=headers)
        except aiohttp.ClientError as exc:
            await session.close()
            return JSONResponse({"error": {"message": f"upstream unreachable: {type(exc).__name__}"}}, status_code=502)

        async def relay():
            try:
                async for chunk in answer.content.iter_any():
                    yield chunk
            finally:
                answer.release()
                await session.close()

        return StreamingResponse(relay(), status_code=answer.status, media_type=answer.content_type)

    async def health(request):
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/health", health, methods=["GET"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Route chat completions through a prefill then a decode server.")
    parser.add_argument("--prefill", required=True, help="prefill server's OpenAI base URL (…/v1)")
    parser.add_argument("--decode", required=True, help="decode server's OpenAI base URL (…/v1)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args()
    uvicorn.run(app(options.prefill.rstrip("/"), options.decode.rstrip("/")), host=options.host, port=options.port)


if __name__ == "__main__":
    main()
