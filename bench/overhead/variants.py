"""More proxy set-ups measured beside the default one (DuckDB, one worker), in the same run:
``--variants pg:1,pg:2,duckdb:1:durable,duckdb:1:fsync`` = log engine : workers [: durable |
fsync] (fsync: the durable journal forced to the disk on every append, DISTILL_LOG_FSYNC).

PostgreSQL variants share one throwaway cluster (`bench.common.pgcluster`), one fresh
database each. `compare_variants` gives each variant's throughput and latency against the
default proxy ("distill") at the same mode and concurrency.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from bench.common.pgcluster import PgCluster, running_cluster

BASELINE = "distill"


@dataclass(frozen=True)
class Variant:
    engine: str  # duckdb | pg
    workers: int
    durable: bool
    fsync: bool = False

    @property
    def name(self) -> str:
        flag = "-fsync" if self.fsync else "-durable" if self.durable else ""
        return f"{self.engine}-w{self.workers}{flag}"

    @property
    def refused(self) -> str | None:
        """Why `distill serve` will not run this set-up (it is reported, not measured)."""
        if self.engine == "duckdb" and self.workers > 1:
            return "refused: a DuckDB file has one writing process (use PostgreSQL)"
        return None


def parse_variants(text: str) -> list[Variant]:
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        parts = item.split(":")
        if parts[0] not in ("duckdb", "pg") or len(parts) not in (2, 3):
            raise ValueError(f"--variants {item!r}: expected duckdb|pg:WORKERS[:durable|fsync]")
        flag = parts[2] if len(parts) == 3 else ""
        if flag not in ("", "durable", "fsync"):
            raise ValueError(f"--variants {item!r}: the third field is 'durable' or 'fsync'")
        out.append(Variant(parts[0], int(parts[1]), bool(flag), fsync=flag == "fsync"))
    return out


def variant_env(variant: Variant, cluster: PgCluster | None) -> dict[str, str]:
    env = {"DISTILL_WORKERS": str(variant.workers)}
    if variant.durable:
        env["DISTILL_LOG_DURABLE"] = "true"
    if variant.fsync:
        env["DISTILL_LOG_FSYNC"] = "true"
    if variant.engine == "pg":
        if cluster is None:
            raise RuntimeError("a PostgreSQL variant needs the cluster")
        env["DISTILL_DB"] = cluster.create_database()
    return env


def cluster_for(variants: list[Variant], stack: ExitStack) -> PgCluster | None:
    """A throwaway cluster if any variant uses PostgreSQL (stopped when `stack` closes)."""
    if not any(v.engine == "pg" for v in variants):
        return None
    return stack.enter_context(running_cluster())


def compare_variants(
    cells: dict[tuple[str, int, str], dict[str, float]], names: list[str]
) -> list[dict[str, Any]]:
    """Per (mode, concurrency, variant): requests/s and p50/p99 over the default proxy's."""
    rows = []
    for mode, conc, target in sorted(cells):
        base = cells.get((mode, conc, BASELINE))
        if target not in names or base is None:
            continue
        cell = cells[(mode, conc, target)]
        rows.append(
            {
                "mode": mode,
                "concurrency": conc,
                "variant": target,
                "rps": cell["rps"],
                "rps_vs_default": cell["rps"] / base["rps"] if base["rps"] else None,
                "p50_vs_default": cell["p50_ms"] / base["p50_ms"] if base["p50_ms"] else None,
                "p99_vs_default": cell["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
            }
        )
    return rows


def variants_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'mode':<10}{'conc':>5}  {'variant':<18}{'req/s':>9}{'x default':>11}"
        f"{'p50 x':>8}{'p99 x':>8}"
    ]
    for r in rows:
        lines.append(
            f"{r['mode']:<10}{r['concurrency']:>5}  {r['variant']:<18}{r['rps']:>9.0f}"
            f"{_fmt(r['rps_vs_default']):>11}{_fmt(r['p50_vs_default']):>8}"
            f"{_fmt(r['p99_vs_default']):>8}"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
