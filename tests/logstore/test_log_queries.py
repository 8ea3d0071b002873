"""Read queries on hand-built rows, with hand-computed expectations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from proxy.logstore import queries
from proxy.logstore.rows import insert_batch, to_columns
from proxy.logstore.schema import migrate
from tests.logstore.conftest import T0

# (second offset, route, total latency ms, cost, counterfactual cost, teacher called)
ROWS = [
    (0, "student", 10.0, 0.0, 0.010, False),
    (10, "student", 20.0, 0.0, 0.010, True),  # shadow sample
    (20, "teacher", 100.0, 0.010, 0.010, True),
    (65, "student", 30.0, 0.0, 0.010, False),
    (70, "teacher", 200.0, 0.012, 0.012, True),
    (130, "none", 5.0, 0.0, 0.0, True),
]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "q.duckdb"))
    migrate(connection)
    records: list[dict[str, Any]] = [
        {
            "id": f"r{i}",
            "created_at": T0 + timedelta(seconds=s),
            "route": route,
            "total_latency_ms": latency,
            "cost_usd": cost,
            "counterfactual_cost_usd": cf,
            "teacher_latency_ms": 50.0 if called else None,
            "status_code": 502 if route == "none" else 200,
            "request_json": {"messages": []},
        }
        for i, (s, route, latency, cost, cf, called) in enumerate(ROWS)
    ]
    insert_batch(connection, to_columns(records))
    yield connection
    connection.close()


def test_summary(conn: duckdb.DuckDBPyConnection) -> None:
    out = queries.summary(conn)
    assert out["requests"] == 6
    assert out["routes"] == {"none": 1, "student": 3, "teacher": 2}
    assert out["fallback_rate"] == pytest.approx(2 / 6)
    assert out["teacher_calls"] == 4 and out["errors"] == 1
    assert out["cost_usd"] == pytest.approx(0.022)
    assert out["counterfactual_cost_usd"] == pytest.approx(0.052)
    assert out["savings_usd"] == pytest.approx(0.030)
    assert out["latency_ms"]["student"]["p50"] == pytest.approx(20.0)
    assert out["latency_ms"]["student"]["p95"] == pytest.approx(29.0)  # interpolated
    assert out["latency_ms"]["teacher"]["p50"] == pytest.approx(150.0)
    json.dumps(out)  # plain, serialisable values


def test_summary_since_and_empty(conn: duckdb.DuckDBPyConnection) -> None:
    out = queries.summary(conn, since=T0 + timedelta(seconds=60))
    assert out["requests"] == 3 and out["routes"] == {"none": 1, "student": 1, "teacher": 1}
    empty = queries.summary(conn, since=T0 + timedelta(days=1))
    assert empty["requests"] == 0 and empty["fallback_rate"] is None
    assert empty["cost_usd"] == 0.0 and empty["latency_ms"] == {}


def test_timeseries(conn: duckdb.DuckDBPyConnection) -> None:
    out = queries.timeseries(conn, bucket_seconds=60)
    start = int(T0.timestamp())
    assert [b["t"] for b in out] == [start, start + 60, start + 120]
    assert out[0]["time"] == "2025-03-01T12:00:00"
    assert [b["requests"] for b in out] == [3, 2, 1]
    assert [b["teacher_calls"] for b in out] == [2, 1, 1]
    assert [b["fallback_rate"] for b in out] == pytest.approx([1 / 3, 1 / 2, 0.0])
    assert out[1]["cost_usd"] == pytest.approx(0.012)
    assert out[1]["counterfactual_cost_usd"] == pytest.approx(0.022)
    later = queries.timeseries(conn, since=T0 + timedelta(seconds=100), bucket_seconds=60)
    assert [b["requests"] for b in later] == [1]
    json.dumps(out)
    with pytest.raises(ValueError):
        queries.timeseries(conn, bucket_seconds=0)


def test_recent(conn: duckdb.DuckDBPyConnection) -> None:
    out = queries.recent(conn, limit=2)
    assert [r["id"] for r in out] == ["r5", "r4"]
    assert out[0]["created_at"] == "2025-03-01T12:02:10"
    assert "request_json" not in out[0]
    json.dumps(out)


def test_runs(conn: duckdb.DuckDBPyConnection) -> None:
    assert queries.runs(conn) == []
    conn.execute(
        "INSERT INTO runs (id, created_at, status, config_json, metrics_json) VALUES "
        "('a', ?, 'done', '{\"epochs\": 2}', '{\"agreement\": 0.9}'), "
        "('b', ?, 'running', NULL, NULL)",
        [T0, T0 + timedelta(hours=1)],
    )
    out = queries.runs(conn, limit=5)
    assert [r["id"] for r in out] == ["b", "a"]
    assert out[1]["config_json"] == {"epochs": 2} and out[1]["metrics_json"] == {"agreement": 0.9}
    assert out[0]["metrics_json"] is None
    json.dumps(out)
