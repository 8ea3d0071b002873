"""Running the app under uvicorn: the bind-address safety check, graceful shutdown."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from proxy.app import create_app
from proxy.auth import is_loopback
from proxy.logstore.backend import describe_log
from proxy.settings import DB_FILE_NAME, Settings
from proxy.workers import check_workers, serve_workers

LEGACY_DB = Path(DB_FILE_NAME)  # where versions before the one data directory kept the log


class BindRefused(SystemExit):
    pass


def check_bind(settings: Settings) -> None:
    """Without client keys the proxy is an open relay to a paid API: loopback only."""
    if not settings.client_keys and not is_loopback(settings.host):
        raise BindRefused(
            f"distill: refusing to bind {settings.host} without client keys; set DISTILL_API_KEYS "
            "(comma-separated) or bind 127.0.0.1."
        )


def legacy_db_warning(settings: Settings) -> str | None:
    """A log left by an older version in ./distill.duckdb while the default one is new."""
    db = settings.db
    if not isinstance(db, Path) or db != settings.data_dir / DB_FILE_NAME or db.exists():
        return None
    if not LEGACY_DB.is_file() or LEGACY_DB.resolve() == db.resolve():
        return None
    return (
        f"./{LEGACY_DB} is a request log from an older version; the log now lives in {db}. "
        f"Move it there (mkdir -p {db.parent} && mv {LEGACY_DB} {db}) or set "
        f"DISTILL_DB={LEGACY_DB} to keep using it."
    )


def serve(settings: Settings) -> int:
    check_bind(settings)
    check_workers(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The row-count trigger polls every few seconds; two INFO lines per poll drown the log.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    logging.getLogger("distill").info(
        "distill proxy on http://%s:%s/v1 (%s, %d worker(s))",
        settings.host,
        settings.port,
        describe_log(settings.db),
        settings.workers,
    )
    if (legacy := legacy_db_warning(settings)) is not None:
        logging.getLogger("distill").warning(legacy)
    uvicorn_options: dict[str, Any] = {
        "timeout_graceful_shutdown": int(settings.shutdown_grace),
        "log_level": "info",
        "access_log": False,
    }
    # One INFO line per upstream call would flood the log (and cost time) under load.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.workers > 1:
        return serve_workers(settings, **uvicorn_options)
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, **uvicorn_options
    )
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which would end the
    # process "killed by SIGTERM"; a drained, clean stop exits 0 instead.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    uvicorn.Server(config).run()
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    """Receives the signal uvicorn re-raises once it has shut down; nothing left to do."""
