"""hetc's agent runtime: executes a compiled bundle's agent graph per request.

- graph.py: the stage graph of plan.json with its loops, in the form the router walks.
- bindings.py: where each node's work really happens (model endpoints, tools, indexes, code).
- router.py: one request through the graph (fan-out, joins, run-time branches, bounded loops, deadline).
- workers.py: what one stage does (LLM turn, tool call, retrieval, code node), in or out of Ray;
  llm_client.py (OpenAI chat completions, streamed), audio.py (transcriptions, speech), kernels.py (the
  bundle's CPU object code, called through ctypes).
- http_app.py: the HTTP API (JSON and server-sent events), /metrics (metrics.py) and /healthz.
- serve.py: the Ray Serve application (`hetc.runtime.serve:build_app`); local.py the in-process server;
  cli.py `hetc serve`; pd_proxy.py the router of a disaggregated prefill/decode pair on Kubernetes.

Install with `pip install "hetc[serve]"`; docs/deploy.md describes the runtime.
"""
