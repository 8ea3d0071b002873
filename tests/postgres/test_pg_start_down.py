"""A replica started while its PostgreSQL is down: it starts and serves (rows go to the
spill journal), /readyz stays 200 and says the database is unreachable and being retried,
and once the database is up the journal is replayed: every acknowledged row exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.banking77.stack import Server
from bench.common.pgcluster import PgCluster, running_cluster, skip_reason
from bench.soak.stack import stop_all
from tests.postgres.test_pg_replicas import (
    _traffic,
    replica_factory,
    upstreams,
    wait_for,
    wait_rows,
)

pytestmark = pytest.mark.postgres

__all__ = ["upstreams"]  # the module-scoped fake upstreams fixture, shared


@pytest.fixture
def stopped_cluster() -> Iterator[tuple[PgCluster, str]]:
    """A cluster with a fresh, empty database, stopped before the replica starts."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with running_cluster() as cluster:
        url = cluster.create_database()
        cluster.stop()
        yield cluster, url


def readyz(server: Server) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{server.root}/readyz", timeout=5)
    return response.status_code, response.json()


def test_replica_started_before_its_database(
    upstreams: tuple[Server, Server], tmp_path: Path, stopped_cluster: tuple[PgCluster, str]
) -> None:
    cluster, url = stopped_cluster
    serve, started = replica_factory(upstreams, tmp_path, url)
    try:
        # Limits on: their shared counters (in the same database) are down too.
        server = serve("early", DISTILL_LIMIT_RPM="100000")  # waits for /readyz 200
        status, body = readyz(server)
        assert status == 200 and body["ready"], body
        assert body["log"]["database"].startswith("unreachable, retrying in "), body
        assert "spill journal" in body["log"]["database"]
        assert body["log"]["failed_tries"] >= 1
        outcomes = asyncio.run(_traffic([server], "early", 40))
        acked = {o.request_id for o in outcomes if o.status == 200 and o.complete}
        assert len(acked) == 40, [o for o in outcomes if not o.complete][:3]
        time.sleep(1.0)  # a retry or two while the database is still away
        assert readyz(server)[1]["log"]["failed_tries"] >= 1
        cluster.start()
        # Backoff is at most 30 s between tries; the first success migrates the empty
        # database, then the journal is replayed.
        wait_for(lambda: readyz(server)[1]["log"]["database"] == "reachable", timeout=45)
        rows = wait_rows(url, "early", acked, timeout=30)
        assert set(rows) == acked, len(acked - set(rows))
        assert set(rows.values()) == {1}
        later = asyncio.run(_traffic([server], "later", 10))  # written directly now
        acked_later = {o.request_id for o in later if o.status == 200 and o.complete}
        assert len(acked_later) == 10
        rows = wait_rows(url, "later", acked_later, timeout=15)
        assert set(rows) == acked_later and set(rows.values()) == {1}
        status, body = readyz(server)
        assert status == 200 and body["log"]["database"] == "reachable", body
        log_text = (tmp_path / "logs" / "early.log").read_text(errors="replace")
        assert "unreachable" in log_text and "reachable again" in log_text
    finally:
        stop_all(*started)
