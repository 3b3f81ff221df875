"""The example's web-search tool: a small HTTP server (standard library) on 127.0.0.1.

    python examples/cpu-helpdesk/tool_server.py --port 8088

POST /search with {"query": "..."} returns {"results": [...], "more_results": bool}: results are the
articles whose words overlap the query most. A query containing "everything" always reports more results,
which makes an agent that follows `more_results` search until its loop bound.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from helpdesk import words

DOCUMENTS = [json.loads(line) for line in (Path(__file__).parent / "index" / "documents.jsonl").read_text().splitlines()]


def search(query: str, limit: int = 2) -> dict:
    wanted = set(words(query))
    ranked = sorted(DOCUMENTS, key=lambda d: (-len(wanted & set(words(d["text"]))), d["id"]))
    return {"results": [d["text"] for d in ranked[:limit]], "more_results": "everything" in wanted}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        try:
            arguments = json.loads(self.rfile.read(min(length, 1 << 20)) or b"{}")
            body, status = json.dumps(search(str(arguments.get("query", "")))).encode(), 200
        except ValueError:
            body, status = b'{"error": "expected JSON"}', 400
        if self.path.rstrip("/") != "/search":
            body, status = b'{"error": "POST /search"}', 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # quiet
        pass


def serve(port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8088)
    server = serve(parser.parse_args().port)
    print(f"search tool on http://127.0.0.1:{server.server_address[1]}/search", flush=True)
    server.serve_forever()
