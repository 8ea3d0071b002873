"""Choosing the log engine from `DISTILL_DB`: a PostgreSQL URL, else a DuckDB file.

Its own module because it names both engines, and `postgres` builds on `backend`: kept
here, `backend` and `postgres` would import each other."""

from __future__ import annotations

from pathlib import Path

from proxy.logstore.backend import (
    Connect,
    DuckDBBackend,
    LogBackend,
    connect_db,
    is_postgres_url,
)
from proxy.logstore.rows import InsertBatch, insert_batch


def backend_for(
    db: Path | str, connect: Connect = connect_db, insert: InsertBatch = insert_batch
) -> LogBackend:
    """The engine `DISTILL_DB` names: a PostgreSQL URL, else a DuckDB file."""
    if is_postgres_url(db):
        from proxy.logstore.postgres import PostgresBackend  # psycopg only for PostgreSQL

        return PostgresBackend(str(db))
    return DuckDBBackend(Path(db), connect, insert)
