"""SIGKILL during cold-start traffic, then a restart: no acknowledged row is lost.

In calibration mode (no static threshold) every request the teacher answers also gets a
background student answer, and its row is complete only once that answer is in, seconds
after the client got its response. With the durable journal (the default) the row is
journaled when its response goes out and completed later; a restart replays it. With the
journal off, those rows (and the last flush interval's) die with the process.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.soak.load import Outcome, send
from bench.soak.stack import ProxyConfig, signal_proxy, start_distill, stop_all
from tests.hardening.conftest import TEACHER_KEY, Fakes, query

pytestmark = pytest.mark.chaos

CLIENTS = 8
KILL_AFTER = 5.0
# A busy machine (a benchmark beside the tier) answers far fewer requests in KILL_AFTER:
# the kill waits for enough acknowledged ones, up to KILL_BY seconds.
MIN_ACKED = 20
KILL_BY = 90.0
# The background student answer takes this long: rows of the last seconds wait for it.
PROMPT = "#student=slow:2500 what is the capital of France?"


@dataclass
class ColdStartConfig(ProxyConfig):
    """The stack's proxy in calibration mode: no static threshold."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("DISTILL_CONFIDENCE_THRESHOLD")
        return env


async def _client(url: str, n: int, killed: asyncio.Event, outcomes: list[Outcome]) -> None:
    async with httpx.AsyncClient(timeout=15) as client:
        i = 0
        while not killed.is_set():
            kind = "stream" if i % 2 else "plain"
            outcomes.append(await send(client, url, f"cold-{n}-{i}", kind, PROMPT))
            i += 1


def _kill_under_traffic(proxy: Any) -> list[Outcome]:
    """8 clients send one request after another; SIGKILL KILL_AFTER seconds in, or later
    once more than MIN_ACKED were acknowledged (a busy machine)."""
    url = f"{proxy.v1}/chat/completions"
    outcomes: list[Outcome] = []

    async def traffic() -> None:
        killed = asyncio.Event()
        clients = [_client(url, n, killed, outcomes) for n in range(CLIENTS)]
        running = asyncio.gather(*clients)
        await asyncio.sleep(KILL_AFTER)
        deadline = asyncio.get_running_loop().time() + KILL_BY
        while sum(o.acknowledged for o in outcomes) <= MIN_ACKED + CLIENTS:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        killed.set()
        signal_proxy(proxy, signal.SIGKILL)
        await asyncio.wait_for(running, 20)  # requests in flight fail: connection lost

    asyncio.run(traffic())
    assert proxy.child.popen.wait(timeout=10) == -signal.SIGKILL
    return outcomes


def _rows_per_request(db: Path) -> Counter[str]:
    rows = query(db, "SELECT coalesce(request_id, id) FROM requests")
    return Counter(str(row[0]) for row in rows)


def _restart_and_stop(config: ProxyConfig, logs: Path) -> None:
    """A restart on the same files replays the journal; SIGTERM writes what is left."""
    restarted = start_distill(config, logs, name="restarted")
    try:
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{restarted.root}/readyz").status_code == 200
        signal_proxy(restarted, signal.SIGTERM)
        assert restarted.child.popen.wait(timeout=40) == 0, restarted.child.tail()
    finally:
        stop_all(restarted)


def _run(fakes: Fakes, tmp_path: Path, **extra: str) -> tuple[set[str], Counter[str]]:
    config = ColdStartConfig(
        fakes.student,
        fakes.teacher,
        TEACHER_KEY,
        tmp_path / "distill.duckdb",
        tmp_path / "data",
        extra,
    )
    proxy = start_distill(config, tmp_path / "logs")
    try:
        outcomes = _kill_under_traffic(proxy)
    finally:
        stop_all(proxy)
    acked = {o.request_id for o in outcomes if o.acknowledged}
    assert len(acked) > MIN_ACKED, f"only {len(acked)} acknowledged before the kill"
    assert {o.route for o in outcomes if o.acknowledged} == {"teacher"}  # cold start
    _restart_and_stop(config, tmp_path / "logs")
    return acked, _rows_per_request(config.db)


def test_sigkill_during_cold_start_loses_no_acknowledged_row(fakes: Fakes, tmp_path: Path) -> None:
    acked, rows = _run(fakes, tmp_path)
    missing = sorted(i for i in acked if rows[i] == 0)
    doubled = sorted(i for i in acked if rows[i] > 1)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged rows lost: {missing[:10]}"
    assert not doubled, f"acknowledged requests with more than one row: {doubled[:10]}"
    # A row replayed from its response-time journal entry is whole but for the student.
    kept = query(
        tmp_path / "distill.duckdb",
        "SELECT id, status_code, teacher_text IS NOT NULL, student_text IS NOT NULL FROM requests",
    )
    assert all(status == 200 and teacher for i, status, teacher, _ in kept if i in acked)
    with_student = sum(1 for row in kept if row[0] in acked and row[3])
    print(
        f"cold-start SIGKILL: {len(acked)} acknowledged, all logged once, "
        f"{with_student} with their background student answer"
    )


def test_sigkill_during_cold_start_without_the_journal_loses_rows(
    fakes: Fakes, tmp_path: Path
) -> None:
    acked, rows = _run(fakes, tmp_path, DISTILL_LOG_DURABLE="false")
    missing = [i for i in acked if rows[i] == 0]
    # Rows waiting 2.5 s for their background answer (and the last flush interval's) were
    # only in memory when the process died.
    assert missing, "the journal-off proxy lost nothing: the kill test would not catch a loss"
    assert all(rows[i] == 1 for i in acked if rows[i])
    print(f"cold-start SIGKILL, journal off: {len(missing)} of {len(acked)} acknowledged lost")
