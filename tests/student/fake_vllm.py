"""A stand-in for the vLLM OpenAI server in fast supervisor tests (fault paths only).

Serves GET /v1/models and /health after `--delay` seconds (or once the `--wait-for` file exists:
the test decides when loading ends, whatever the machine's load), like vLLM once its model is
loaded.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _handler(name: str, healthy: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/v1/models":
                body = json.dumps({"object": "list", "data": [{"id": name}]}).encode()
                status = 200
            elif self.path == "/health":
                body, status = b"", (200 if healthy else 503)
            else:
                body, status = b"{}", 404
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    return Handler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--served-model-name", default="fake")
    p.add_argument("--model", default="")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--exit-code", type=int, default=None, help="exit at once with this code")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--unhealthy", action="store_true")
    p.add_argument("--grandchild-pidfile", type=Path, default=None)
    p.add_argument(
        "--wait-for", type=Path, default=None, help="load until this file exists (at most 120 s)"
    )
    args = p.parse_args()
    print(f"fake vllm pid starting on port {args.port}", flush=True)
    if args.exit_code is not None:
        print("fatal: fake failure for the test", flush=True)
        sys.exit(args.exit_code)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild_pidfile is not None:
        helper = subprocess.Popen(["sleep", "600"])  # like vLLM's engine-core helper
        args.grandchild_pidfile.write_text(str(helper.pid))
    time.sleep(args.delay)
    deadline = time.monotonic() + 120
    while args.wait_for is not None and not args.wait_for.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), _handler(args.served_model_name, not args.unhealthy)
    )
    print("fake vllm: application startup complete", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
