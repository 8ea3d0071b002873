"""The DuckDB -> PostgreSQL translation of the project's SQL (no database needed)."""

from __future__ import annotations

import pytest

from proxy.logstore.pgsql import SqlTranslationError, Translator, translate
from proxy.logstore.schema import MIGRATIONS


def test_placeholders_and_duckdb_functions() -> None:
    sql = translate(
        "SELECT count(*) FILTER (route = 'teacher'), quantile_cont(total_latency_ms, 0.5), "
        "CAST(floor(epoch(created_at) / ?) * ? AS BIGINT) FROM requests WHERE created_at >= ?"
    )
    assert "?" not in sql
    assert sql.count("%s") == 3
    assert "FILTER(WHERE route = 'teacher')" in sql
    assert "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY total_latency_ms)" in sql


def test_group_by_all_becomes_positions() -> None:
    sql = translate("SELECT coalesce(route, 'x') AS r, tag, count(*) FROM requests GROUP BY ALL")
    assert sql.endswith("GROUP BY 1, 2")


def test_isfinite_on_doubles() -> None:
    sql = translate("SELECT 1 FROM requests WHERE isfinite(confidence)")
    assert "ISFINITE" not in sql.upper()
    assert "'Infinity'" in sql and "'-Infinity'" in sql


def test_subquery_gets_an_alias() -> None:
    sql = translate("SELECT * FROM (SELECT id FROM requests LIMIT ?) ORDER BY id")
    assert ") AS _sub0" in sql


def test_insert_or_ignore_and_replace() -> None:
    assert "ON CONFLICT DO NOTHING" in translate("INSERT OR IGNORE INTO runs (id) VALUES (?)")
    with pytest.raises(SqlTranslationError):
        translate("INSERT OR REPLACE INTO runs (id) VALUES (?)")


def test_percent_in_literals_is_escaped_for_psycopg() -> None:
    assert "LIKE 'a%%'" in translate("SELECT id FROM requests WHERE tag LIKE 'a%'")


def test_every_migration_translates() -> None:
    for migration in MIGRATIONS:
        if isinstance(migration.sql, str):
            text = translate(migration.sql)
            assert "DOUBLE PRECISION" in text or "DOUBLE" not in migration.sql


def test_translator_memoises() -> None:
    translator = Translator()
    first = translator("SELECT ? AS x")
    assert translator("SELECT ? AS x") is first
