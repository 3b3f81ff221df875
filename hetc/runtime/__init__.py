"""hetc's agent runtime: executes a compiled bundle's agent graph per request.

- graph.py: the stage graph of plan.json with its loops, in the form the router walks.
- bindings.py: where each node's work really happens (model endpoints, tools, indexes, code).
- router.py: one request through the graph (fan-out, joins, run-time branches, bounded loops, deadline).
- workers.py: what one stage does (LLM call, tool call, retrieval kernel, code node), in or out of Ray.
- http_app.py: the HTTP API (JSON and server-sent events), /metrics and /healthz.
- serve.py: the Ray Serve application (`hetc.runtime.serve:build_app`); local.py the in-process server.

Install with `pip install "hetc[serve]"`; docs/deploy.md describes the runtime.
"""
