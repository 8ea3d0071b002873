"""The schema contract: exact `requests` columns, ordered and idempotent migrations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from proxy.logstore.schema import MIGRATIONS, REQUEST_COLUMNS, Migration, current_version, migrate

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

EXPECTED_REQUEST_COLUMNS = [
    ("id", "VARCHAR"), ("created_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"),
    ("client_key_hash", "VARCHAR"), ("requested_model", "VARCHAR"), ("tag", "VARCHAR"),
    ("stream", "BOOLEAN"), ("store", "BOOLEAN"), ("route", "VARCHAR"), ("reason", "VARCHAR"),
    ("degraded", "VARCHAR"), ("scorer", "VARCHAR"), ("confidence", "DOUBLE"),
    ("threshold", "DOUBLE"), ("student_model", "VARCHAR"), ("student_version", "VARCHAR"),
    ("prompt_hash", "VARCHAR"), ("request_json", "JSON"), ("student_text", "VARCHAR"),
    ("student_finish_reason", "VARCHAR"), ("student_response_json", "JSON"),
    ("teacher_model", "VARCHAR"), ("teacher_text", "VARCHAR"),
    ("teacher_finish_reason", "VARCHAR"), ("teacher_response_json", "JSON"),
    ("teacher_logprobs_json", "JSON"), ("shadow", "BOOLEAN"),
    ("student_prompt_tokens", "INTEGER"), ("student_completion_tokens", "INTEGER"),
    ("teacher_prompt_tokens", "INTEGER"), ("teacher_completion_tokens", "INTEGER"),
    ("student_latency_ms", "DOUBLE"), ("teacher_latency_ms", "DOUBLE"),
    ("total_latency_ms", "DOUBLE"), ("ttfb_ms", "DOUBLE"), ("teacher_retries", "INTEGER"),
    ("status_code", "INTEGER"), ("error", "VARCHAR"), ("cost_usd", "DOUBLE"),
    ("counterfactual_cost_usd", "DOUBLE"),
    ("endpoint", "VARCHAR"), ("error_code", "VARCHAR"), ("request_id", "VARCHAR"),
    ("attempt", "INTEGER"),
    ("task", "VARCHAR"),
]  # fmt: skip


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [
        (name, typ)
        for name, typ in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "s.duckdb"))
    yield connection
    connection.close()


def test_requests_columns_exact(conn: duckdb.DuckDBPyConnection) -> None:
    migrate(conn)
    assert _columns(conn, "requests") == EXPECTED_REQUEST_COLUMNS
    assert list(REQUEST_COLUMNS) == [name for name, _ in EXPECTED_REQUEST_COLUMNS]


def test_requests_columns_match_architecture_doc() -> None:
    # The doc's table lists some columns two per row ("a, b | INTEGER").
    doc_names: list[str] = []
    section = ARCHITECTURE.read_text().split("## The request log", 1)[1].split("Other tables", 1)[0]
    for line in section.splitlines():
        match = re.match(r"\|\s*([a-z_, ]+?)\s*\|\s*[A-Z]+", line)
        if match:
            doc_names.extend(n.strip() for n in match.group(1).split(","))
    assert doc_names == list(REQUEST_COLUMNS)


def test_other_tables_and_indexes(conn: duckdb.DuckDBPyConnection) -> None:
    migrate(conn)
    assert [n for n, _ in _columns(conn, "runs")] == [
        "id", "created_at", "started_at", "finished_at", "status", "trigger", "reason",
        "config_json", "metrics_json", "adapter_path", "report_path", "pid", "task",
    ]  # fmt: skip
    assert _columns(conn, "student_versions") == [
        ("name", "VARCHAR"), ("run_id", "VARCHAR"), ("adapter_path", "VARCHAR"),
        ("created_at", "TIMESTAMP"), ("activated_at", "TIMESTAMP"), ("active", "BOOLEAN"),
        ("threshold", "DOUBLE"), ("calibration_json", "JSON"), ("closed_set_json", "JSON"),
        ("prompt_prefix", "VARCHAR"), ("task", "VARCHAR"),
    ]  # fmt: skip
    assert _columns(conn, "task_thresholds") == [
        ("task", "VARCHAR"), ("name", "VARCHAR"), ("threshold", "DOUBLE"),
        ("calibration_json", "JSON"), ("updated_at", "TIMESTAMP"),
    ]  # fmt: skip
    indexes = {r[0] for r in conn.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    assert {"requests_created_at_idx", "requests_route_idx"} <= indexes
    conn.execute("INSERT INTO requests (id) VALUES ('a')")
    with pytest.raises(duckdb.ConstraintException):
        conn.execute("INSERT INTO requests (id) VALUES ('a')")


def test_migrate_is_idempotent(conn: duckdb.DuckDBPyConnection) -> None:
    assert current_version(conn) == 0
    assert migrate(conn) == MIGRATIONS[-1].version
    conn.execute("INSERT INTO requests (id) VALUES ('kept')")
    assert migrate(conn) == MIGRATIONS[-1].version
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]
    assert conn.execute("SELECT id FROM requests").fetchall() == [("kept",)]


def test_migrations_apply_in_order_once(conn: duckdb.DuckDBPyConnection) -> None:
    calls: list[int] = []

    def v3(c: duckdb.DuckDBPyConnection) -> None:
        calls.append(3)
        c.execute("ALTER TABLE requests ADD COLUMN extra2 VARCHAR")

    last = MIGRATIONS[-1].version
    steps = (
        *MIGRATIONS,
        Migration(last + 1, "add extra", "ALTER TABLE requests ADD COLUMN extra VARCHAR"),
        Migration(last + 2, "add extra2 via callable", v3),
    )
    assert migrate(conn, MIGRATIONS) == last
    assert migrate(conn, steps) == last + 2
    assert migrate(conn, steps) == last + 2
    assert calls == [3]
    names = [n for n, _ in _columns(conn, "requests")]
    assert names[-2:] == ["extra", "extra2"]
    versions = conn.execute("SELECT version FROM schema_migrations ORDER BY applied_at, version")
    assert [v for (v,) in versions.fetchall()] == list(range(1, last + 3))


def test_failed_migration_rolls_back(conn: duckdb.DuckDBPyConnection) -> None:
    migrate(conn)
    broken = (
        *MIGRATIONS,
        Migration(
            MIGRATIONS[-1].version + 1,
            "half",
            "ALTER TABLE requests ADD COLUMN x INTEGER; SELECT nope FROM nowhere",
        ),
    )
    with pytest.raises(duckdb.CatalogException):
        migrate(conn, broken)
    assert current_version(conn) == MIGRATIONS[-1].version
    assert "x" not in [n for n, _ in _columns(conn, "requests")]


def test_unordered_migrations_refused(conn: duckdb.DuckDBPyConnection) -> None:
    bad = (Migration(2, "b", "SELECT 1"), Migration(1, "a", "SELECT 1"))
    with pytest.raises(ValueError, match="increasing"):
        migrate(conn, bad)
