"""`distill serve`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.cli import Subcommands


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from proxy.server import serve

    return serve(settings)


def register(sub: Subcommands) -> None:
    p = sub.add(
        "serve",
        "run the proxy (starts a vLLM student unless DISTILL_STUDENT_URL is set)",
        _serve,
        overrides=("host", "port", "workers"),
    )
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument(
        "--workers",
        type=int,
        help="proxy processes on the port (default 1); above 1 needs DISTILL_DB=postgresql://",
    )
