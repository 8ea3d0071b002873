"""Shared rate limits on a real `redis-server`: two replicas (two apps with one
DISTILL_REDIS_URL) share one allowance, and a Redis restart mid-traffic fails nothing.

While Redis is unreachable the shared limiter fails open (proxy/limits/shared.py): it
admits uncounted and leaves the store alone for `_STORE_RETRY_SECONDS`, then counts in
Redis again. Redis runs without persistence here, so it comes back with empty counters.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.limits.shared import _STORE_RETRY_SECONDS
from tests.conftest import ProxyHarness
from tests.redis_limits.server import RedisServer

pytestmark = pytest.mark.redis

KEYS = ("key-red-0000001", "key-red-0000002", "key-red-0000003", "key-red-0000004")
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture
def two_replicas(
    make_proxy: Callable[..., Any], redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[ProxyHarness, ProxyHarness]]:
    # KEYS[3] is the background traffic of the restart test: a limit it never reaches.
    busy = {hashlib.sha256(KEYS[3].encode()).hexdigest(): {"rpm": 100_000}}
    with ExitStack() as stack:
        replicas = tuple(
            stack.enter_context(
                make_proxy(
                    db=tmp_path / f"{name}.duckdb",
                    data_dir=tmp_path / f"data-{name}",
                    redis_url=redis_server.url,
                    api_keys=",".join(KEYS),
                    limit_rpm=10,
                    key_limits=busy,
                )
            )
            for name in ("a", "b")
        )
        yield replicas  # type: ignore[misc]


def post(client: httpx.Client, replica: ProxyHarness, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return client.post(f"{replica.url}/v1/chat/completions", json=BODY, headers=headers)


def burst(replicas: tuple[ProxyHarness, ...], key: str, n: int) -> list[httpx.Response]:
    """`n` requests of one key, concurrently, alternating between the replicas."""
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(post, client, replicas[i % len(replicas)], key) for i in range(n)]
        return [job.result() for job in jobs]


def assert_openai_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "counted across all replicas" in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


def test_ten_per_minute_hold_across_two_replicas(
    two_replicas: tuple[ProxyHarness, ProxyHarness],
) -> None:
    responses = burst(two_replicas, KEYS[0], 30)
    assert statuses(responses) == [200] * 10 + [429] * 20
    for response in responses:
        if response.status_code != 200:
            assert_openai_429(response)
    served = len(two_replicas[0].student.requests) + len(two_replicas[1].student.requests)
    assert served == 10  # the refused ones reached no upstream
    assert statuses(burst(two_replicas, KEYS[1], 3)) == [200] * 3  # its own allowance


def _background(replicas: tuple[ProxyHarness, ...], stop: threading.Event) -> list[int]:
    codes: list[int] = []
    with httpx.Client(timeout=30) as client:
        i = 0
        while not stop.is_set():
            try:
                codes.append(post(client, replicas[i % 2], KEYS[3]).status_code)
            except httpx.HTTPError:
                codes.append(-1)
            i += 1
            time.sleep(0.02)
    return codes


def test_redis_restarted_mid_traffic_fails_nothing(
    two_replicas: tuple[ProxyHarness, ProxyHarness], redis_server: RedisServer
) -> None:
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        traffic = pool.submit(_background, two_replicas, stop)
        try:
            # Counted while Redis is up.
            assert statuses(burst(two_replicas, KEYS[0], 12)) == [200] * 10 + [429] * 2
            redis_server.stop()
            # Away: admitted uncounted (fail open), answered at once, even past the limit.
            t0 = time.monotonic()
            assert statuses(burst(two_replicas, KEYS[1], 15)) == [200] * 15
            assert time.monotonic() - t0 < 10
            redis_server.start()
            # Back: after the retry pause every replica counts in Redis again, from zero.
            time.sleep(_STORE_RETRY_SECONDS + 0.5)
            assert statuses(burst(two_replicas, KEYS[2], 12)) == [200] * 10 + [429] * 2
        finally:
            stop.set()
        codes = traffic.result()
    assert len(codes) > 50
    assert set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
