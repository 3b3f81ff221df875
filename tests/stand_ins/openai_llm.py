"""A STAND-IN for an OpenAI-compatible LLM server (vLLM, SGLang, ...): tests only, no model inside.

It speaks the part of the chat completions API the runtime uses (streamed and plain answers, tools, tool
calls) with scripted behaviour, so the runtime can be tested end to end without a GPU:
- when tools are offered and the last message is the user's, or a tool result saying `"more_results": true`,
  it calls the first offered tool with {"query": <the first user message>};
- otherwise it answers "stand-in answer: ..." naming how many tool results and context articles it saw,
  streamed a word at a time;
- a user message containing SLEEP=<seconds> makes it wait that long first (deadline tests);
- `/v1/audio/transcriptions` answers {"text": "heard <n> bytes"} (n: the uploaded file's size) and
  `/v1/audio/speech` answers "RIFF" followed by the text it was given, as audio/wav;
- `/v1/embeddings` answers each input text with `embedding(text, embedding_dim)`: a deterministic vector
  made from the text's sha256 (no model: tests compare the search's ranking with numpy's for that vector);
- `/v1/rerank` (vLLM's re-rank API: `query`, `documents`, optional `top_n`) scores each document with
  `relevance(query, document)`, a deterministic number in [0, 1) from their sha256 (no model: tests compare
  the order documents reach the LLM in with that score's), and answers `results` most relevant first, each
  with its `index`, `document: {text}` and `relevance_score`;
- a chat request for a model whose name contains "Guard" (Llama Guard) answers as that classifier does:
  "\n\nunsafe\nS1,S10" when the user's text contains UNSAFE, else "\n\nsafe".
Every request is recorded in `requests` (for assertions), the embeddings requests also in `embedding_requests`,
the rerank requests in `rerank_requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandInLLM:
    def __init__(self, embedding_dim: int = 32) -> None:
        self.requests: list[dict] = []
        self.embedding_requests: list[dict] = []
        self.rerank_requests: list[dict] = []
        self.embedding_dim = embedding_dim
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes (streaming)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.startswith("/v1/audio/"):
                    stand_in.audio(self, raw)
                    return
                body = json.loads(raw)
                stand_in.requests.append(body)
                if self.path.rstrip("/") == "/v1/embeddings":
                    stand_in.embeddings(self, body)
                    return
                if self.path.rstrip("/") == "/v1/rerank":
                    stand_in.rerank(self, body)
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self.send_error(404)
                    return
                try:
                    stand_in.reply(self, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a deadline test)

            def log_message(self, format: str, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> StandInLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def audio(handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        if handler.path.rstrip("/") == "/v1/audio/transcriptions":
            boundary = handler.headers.get_content_type() == "multipart/form-data" and \
                handler.headers.get_param("boundary")
            parts = raw.split(b"--" + boundary.encode()) if boundary else []
            file_part = next((p for p in parts if b'name="file"' in p), b"")
            content = file_part.split(b"\r\n\r\n", 1)[-1].removesuffix(b"\r\n")
            data, content_type = json.dumps({"text": f"heard {len(content)} bytes"}).encode(), "application/json"
        else:
            data, content_type = b"RIFF" + json.loads(raw)["input"].encode(), "audio/wav"
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def embedding(text: str, dim: int) -> list[float]:
        """The stand-in's vector for a text: dim numbers in [-1, 1) from sha256(i, text)."""
        return [struct.unpack(">I", hashlib.sha256(f"{i}:{text}".encode()).digest()[:4])[0] / 2**31 - 1
                for i in range(dim)]

    def embeddings(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        self.embedding_requests.append(body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = [{"object": "embedding", "index": i, "embedding": self.embedding(text, self.embedding_dim)}
                for i, text in enumerate(texts)]
        self.send_json(handler, {"object": "list", "model": body["model"], "data": data})

    @staticmethod
    def relevance(query: str, document: str) -> float:
        """The stand-in cross-encoder's score of a (query, document) pair: a number in [0, 1) from sha256."""
        return struct.unpack(">I", hashlib.sha256(f"{query}\0{document}".encode()).digest()[:4])[0] / 2**32

    def rerank(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        self.rerank_requests.append(body)
        documents = body["documents"]
        scored = sorted(((self.relevance(body["query"], text), i, text) for i, text in enumerate(documents)),
                        key=lambda item: -item[0])
        results = [{"index": i, "document": {"text": text}, "relevance_score": score}
                   for score, i, text in scored[: body.get("top_n") or len(documents)]]
        self.send_json(handler, {"id": "rerank-stand-in", "model": body["model"], "results": results})

    @staticmethod
    def send_json(handler: BaseHTTPRequestHandler, answer: dict) -> None:
        payload = json.dumps(answer).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def decide(body: dict) -> tuple[str, list[dict]]:
        messages, tools = body["messages"], body.get("tools") or []
        if "Guard" in body.get("model", ""):
            text = " ".join(m["content"] for m in messages if m["role"] == "user")
            return ("\n\nunsafe\nS1,S10" if "UNSAFE" in text else "\n\nsafe"), []
        question = next((m["content"] for m in messages if m["role"] == "user"), "")
        last = messages[-1]
        wants_more = last["role"] == "user" or (last["role"] == "tool" and '"more_results": true' in last["content"])
        if tools and wants_more:
            name = tools[0]["function"]["name"]
            call_id = f"call_{len(messages)}"
            return "", [{"id": call_id, "type": "function",
                         "function": {"name": name, "arguments": json.dumps({"query": question[:200]})}}]
        results = sum(1 for m in messages if m["role"] == "tool")
        articles = len(re.findall(r"^\[kb-\d+\]", question, re.M))
        return f"stand-in answer: {results} tool results, {articles} articles.", []

    def reply(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        first_user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
        sleep = re.search(r"SLEEP=([0-9.]+)", first_user)
        if sleep:
            time.sleep(float(sleep.group(1)))
        text, calls = self.decide(body)
        if not body.get("stream"):
            message = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            data = json.dumps({"choices": [{"index": 0, "message": message}]}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()

        def event(delta: dict) -> None:
            chunk = {"choices": [{"index": 0, "delta": delta}]}
            handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            handler.wfile.flush()

        for i, call in enumerate(calls):  # as vLLM streams them: id and name first, arguments in pieces
            arguments = call["function"]["arguments"]
            event({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                   "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for start in range(0, len(arguments), 8):
                event({"tool_calls": [{"index": i, "function": {"arguments": arguments[start:start + 8]}}]})
        for word in re.findall(r"\S+\s*", text):
            event({"content": word})
        handler.wfile.write(b"data: [DONE]\n\n")
