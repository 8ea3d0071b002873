"""The Redis tier (marker ``redis``): a real `redis-server` per test, started by the tests.
Skipped, with the reason, only where the binary is absent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_limits.server import RedisServer, running_redis, skip_reason


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with running_redis() as server:
        yield server
