"""The DuckDB schema: explicit columns and ordered, recorded migrations.

Each `Migration` runs once, in version order, inside its own transaction, and is
recorded in ``schema_migrations``. Never edit a released migration: append a new
one (``ALTER TABLE ...``) so existing files upgrade in place. The column tuple
below is the contract of ``docs/architecture.md`` (a test checks it against
DuckDB's information_schema).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

log = logging.getLogger(__name__)

# (name, DuckDB type) in table order. JSON columns hold JSON text. The columns of
# migration 1 are frozen here; later migrations append theirs (ALTER TABLE ADD).
_V1_REQUEST_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("id", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
    ("finished_at", "TIMESTAMP"),
    ("client_key_hash", "VARCHAR"),
    ("requested_model", "VARCHAR"),
    ("tag", "VARCHAR"),
    ("stream", "BOOLEAN"),
    ("store", "BOOLEAN"),
    ("route", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("degraded", "VARCHAR"),
    ("scorer", "VARCHAR"),
    ("confidence", "DOUBLE"),
    ("threshold", "DOUBLE"),
    ("student_model", "VARCHAR"),
    ("student_version", "VARCHAR"),
    ("prompt_hash", "VARCHAR"),
    ("request_json", "JSON"),
    ("student_text", "VARCHAR"),
    ("student_finish_reason", "VARCHAR"),
    ("student_response_json", "JSON"),
    ("teacher_model", "VARCHAR"),
    ("teacher_text", "VARCHAR"),
    ("teacher_finish_reason", "VARCHAR"),
    ("teacher_response_json", "JSON"),
    ("teacher_logprobs_json", "JSON"),
    ("shadow", "BOOLEAN"),
    ("student_prompt_tokens", "INTEGER"),
    ("student_completion_tokens", "INTEGER"),
    ("teacher_prompt_tokens", "INTEGER"),
    ("teacher_completion_tokens", "INTEGER"),
    ("student_latency_ms", "DOUBLE"),
    ("teacher_latency_ms", "DOUBLE"),
    ("total_latency_ms", "DOUBLE"),
    ("ttfb_ms", "DOUBLE"),
    ("teacher_retries", "INTEGER"),
    ("status_code", "INTEGER"),
    ("error", "VARCHAR"),
    ("cost_usd", "DOUBLE"),
    ("counterfactual_cost_usd", "DOUBLE"),
)

# Migration 3 (issue 13): every endpoint and every refused request has a row.
_V3_REQUEST_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("endpoint", "VARCHAR"),
    ("error_code", "VARCHAR"),
    ("request_id", "VARCHAR"),
    ("attempt", "INTEGER"),
)

# Migration 4 (issue 24): the task of every chat/Responses row (docs/tasks.md).
_V4_REQUEST_COLUMN_TYPES: tuple[tuple[str, str], ...] = (("task", "VARCHAR"),)

REQUEST_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    _V1_REQUEST_COLUMN_TYPES + _V3_REQUEST_COLUMN_TYPES + _V4_REQUEST_COLUMN_TYPES
)

REQUEST_COLUMNS: tuple[str, ...] = tuple(name for name, _ in REQUEST_COLUMN_TYPES)
JSON_COLUMNS: frozenset[str] = frozenset(n for n, t in REQUEST_COLUMN_TYPES if t == "JSON")
TIMESTAMP_COLUMNS: frozenset[str] = frozenset(
    n for n, t in REQUEST_COLUMN_TYPES if t == "TIMESTAMP"
)


def _requests_ddl() -> str:
    cols = ",\n    ".join(
        f"{name} {typ}{' PRIMARY KEY' if name == 'id' else ''}"
        for name, typ in _V1_REQUEST_COLUMN_TYPES
    )
    return f"CREATE TABLE requests (\n    {cols}\n)"


_V1_SQL = f"""
{_requests_ddl()};
CREATE INDEX requests_created_at_idx ON requests (created_at);
CREATE INDEX requests_route_idx ON requests (route);
CREATE TABLE runs (
    id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR,
    trigger VARCHAR,
    reason VARCHAR,
    config_json JSON,
    metrics_json JSON,
    adapter_path VARCHAR,
    report_path VARCHAR,
    pid INTEGER
);
CREATE TABLE student_versions (
    name VARCHAR PRIMARY KEY,
    run_id VARCHAR,
    adapter_path VARCHAR,
    created_at TIMESTAMP,
    activated_at TIMESTAMP,
    active BOOLEAN,
    threshold DOUBLE,
    calibration_json JSON,
    closed_set_json JSON,
    prompt_prefix VARCHAR
);
"""

MigrationStep = str | Callable[[duckdb.DuckDBPyConnection], None]


@dataclass(frozen=True)
class Migration:
    """One schema step: SQL text (several statements allowed) or a callable."""

    version: int
    name: str
    sql: MigrationStep


# User feedback on logged requests (issue 15). Every feedback is kept; the latest per
# request counts. No foreign key: a request row may still be queued in the writer.
_FEEDBACK_SQL = """
CREATE TABLE feedback (
    id VARCHAR PRIMARY KEY,
    request_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    rating VARCHAR,
    correction VARCHAR,
    note VARCHAR,
    source VARCHAR,
    client_key_hash VARCHAR
);
CREATE INDEX feedback_request_id_idx ON feedback (request_id);
"""

# Endpoint, error code and request attempts (issue 13). A retried request id keeps its
# first row; later attempts get rows of their own, linked by request_id.
_V3_SQL = "".join(
    f"ALTER TABLE requests ADD COLUMN {n} {t};\n" for n, t in _V3_REQUEST_COLUMN_TYPES
)

# The task (issue 24). Rows logged before it keep NULL (reports show "(none)"): the
# header they may have carried was not logged, so their task cannot be told for sure.
_V4_SQL = "".join(
    f"ALTER TABLE requests ADD COLUMN {n} {t};\n" for n, t in _V4_REQUEST_COLUMN_TYPES
)

# The per-task loop (issue 24): a run trains one task, a version serves one task (NULL:
# all traffic, the loop before tasks, and DISTILL_LOOP_SCOPE=all). The active version is
# per task: `active` holds among the rows of one task.
_V5_SQL = """
ALTER TABLE runs ADD COLUMN task VARCHAR;
ALTER TABLE student_versions ADD COLUMN task VARCHAR;
"""

# A task without a version of its own serves the version for all traffic at its own
# threshold, from its own pairs (issue 24). The leader calibrates it; replicas of a shared
# log read it here (a `student_versions` row is one per version, not per task).
_V6_SQL = """
CREATE TABLE task_thresholds (
    task VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    threshold DOUBLE,
    calibration_json JSON,
    updated_at TIMESTAMP NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _V1_SQL),
    Migration(2, "feedback", _FEEDBACK_SQL),
    Migration(3, "endpoints_and_attempts", _V3_SQL),
    Migration(4, "tasks", _V4_SQL),
    Migration(5, "task_loop", _V5_SQL),
    Migration(6, "task_thresholds", _V6_SQL),
)

_BOOKKEEPING_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT (now()::TIMESTAMP)
)
"""


def _scalar(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    # fetchall, not fetchone: DuckDB 2 keeps a partly fetched result open on the
    # connection and refuses the next statement from another thread.
    rows = conn.execute(sql).fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def current_version(conn: duckdb.DuckDBPyConnection) -> int:
    """Highest applied migration version (0 for an empty database)."""
    if not _scalar(
        conn,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'",
    ):
        return 0
    return _scalar(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations")


def _check_order(migrations: tuple[Migration, ...]) -> None:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"migrations must have unique, increasing versions >= 1: {versions}")


def _apply(conn: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    conn.execute("BEGIN TRANSACTION")
    try:
        if callable(migration.sql):
            migration.sql(conn)
        else:
            conn.execute(migration.sql)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) "
            "VALUES (?, ?, now()::TIMESTAMP)",
            [migration.version, migration.name],
        )
        conn.execute("COMMIT")
    except duckdb.Error:
        conn.execute("ROLLBACK")
        raise


def migrate(conn: duckdb.DuckDBPyConnection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Applies pending migrations in order; returns the schema version. Idempotent."""
    _check_order(migrations)
    conn.execute(_BOOKKEEPING_DDL)
    version = current_version(conn)
    for migration in migrations:
        if migration.version <= version:
            continue
        log.info("applying schema migration %d (%s)", migration.version, migration.name)
        _apply(conn, migration)
        version = migration.version
    return version
