"""bench/overhead --variants: parsing and the comparison with the default proxy."""

from __future__ import annotations

import pytest

from bench.overhead.variants import Variant, compare_variants, parse_variants, variant_env


def test_parse_variants() -> None:
    assert parse_variants("pg:2, duckdb:1:durable,") == [
        Variant("pg", 2, False),
        Variant("duckdb", 1, True),
    ]
    assert [v.name for v in parse_variants("pg:1,pg:2:durable")] == ["pg-w1", "pg-w2-durable"]
    (fsync,) = parse_variants("duckdb:1:fsync")
    assert fsync == Variant("duckdb", 1, True, fsync=True) and fsync.name == "duckdb-w1-fsync"
    assert variant_env(fsync, None)["DISTILL_LOG_FSYNC"] == "true"
    for bad in ("sqlite:1", "pg", "pg:1:fast"):
        with pytest.raises(ValueError):
            parse_variants(bad)


def test_variant_env_without_cluster() -> None:
    assert variant_env(Variant("duckdb", 1, True), None) == {
        "DISTILL_WORKERS": "1",
        "DISTILL_LOG_DURABLE": "true",
    }
    with pytest.raises(RuntimeError):
        variant_env(Variant("pg", 2, False), None)


def test_compare_variants() -> None:
    cells = {
        ("nonstream", 16, "distill"): {"rps": 400.0, "p50_ms": 10.0, "p99_ms": 20.0},
        ("nonstream", 16, "pg-w2"): {"rps": 600.0, "p50_ms": 8.0, "p99_ms": 30.0},
        ("nonstream", 16, "direct"): {"rps": 9000.0, "p50_ms": 1.0, "p99_ms": 2.0},
    }
    (row,) = compare_variants(cells, ["pg-w2"])
    assert row["rps_vs_default"] == 1.5 and row["p50_vs_default"] == 0.8
    assert row["p99_vs_default"] == 1.5


def test_duckdb_with_two_workers_is_reported_as_refused() -> None:
    (variant,) = parse_variants("duckdb:2")
    assert variant.refused is not None and "one writing process" in variant.refused
    assert Variant("pg", 2, False).refused is None
