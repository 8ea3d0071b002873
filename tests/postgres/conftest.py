"""The PostgreSQL tier (marker ``postgres``): one throwaway cluster per session, a fresh
database per test. Skipped, with the reason, only where the server binaries are absent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.common.pgcluster import PgCluster, running_cluster, skip_reason


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """URL of a new, empty database in the session's cluster."""
    return pg_cluster.create_database()
