"""`distill serve --workers N`: N proxy processes on one port, under uvicorn's supervisor.

The parent binds the socket once and spawns the workers (uvicorn's `Multiprocess`: it
restarts a worker that dies and forwards SIGTERM for a graceful stop). Each worker is a
whole replica: its own app, upstream clients and log writer, all writing the shared
PostgreSQL log directly; one of them wins the leader lock (`proxy.loop.leader`). Their
spill journals share data_dir/spill safely (files are locked by their owner).

A DuckDB file has a single writing process, so N > 1 needs PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from proxy.settings import Settings


class WorkersRefused(SystemExit):
    pass


def check_workers(settings: Settings) -> None:
    if settings.workers > 1 and not settings.db_is_postgres:
        raise WorkersRefused(
            f"distill: --workers {settings.workers} needs a shared log: a DuckDB file "
            f"({settings.db}) has one writing process. Set DISTILL_DB=postgresql://... "
            "(deploy/OPERATIONS.md), or run one worker."
        )
    if settings.workers > 1 and not settings.student_urls:
        raise WorkersRefused(
            f"distill: --workers {settings.workers} would start a vLLM student per worker; run "
            "one vLLM server and set DISTILL_STUDENT_URL for all workers."
        )


class WorkerConfig(uvicorn.Config):
    """A uvicorn config that builds the app from `Settings` inside each worker process (the
    config is pickled to the spawned worker; an app object would not be)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__("proxy.app:create_app", **kwargs)
        self.settings = settings

    def load(self) -> None:
        from proxy.app import create_app

        self.app = create_app(self.settings)
        super().load()


def serve_workers(settings: Settings, **uvicorn_kwargs: Any) -> int:
    """Runs `settings.workers` workers until SIGTERM/SIGINT; returns the exit code."""
    check_workers(settings)
    config = WorkerConfig(
        settings,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **uvicorn_kwargs,
    )
    sock = config.bind_socket()
    Multiprocess(config, sockets=[sock]).run()
    return 0
