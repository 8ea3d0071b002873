"""Two `distill serve` replicas on one PostgreSQL log, as real processes with fake upstreams.

Every acknowledged request has exactly one row; the database stopped and restarted
mid-traffic loses nothing (rows spill to each replica's journal and are replayed).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from bench.banking77.stack import Server
from bench.common.pgcluster import PgCluster, running_cluster, skip_reason
from bench.soak.load import Outcome, send
from bench.soak.stack import ProxyConfig, signal_proxy, start_distill, start_fake, stop_all

pytestmark = pytest.mark.postgres

TEACHER_KEY = "sk-teacher-PG-0b1c2d3e4f"
Serve = Callable[..., Server]


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    logs = tmp_path_factory.mktemp("fake-logs")
    student = start_fake("student", logs)
    teacher = start_fake("teacher", logs, api_key=TEACHER_KEY)
    try:
        yield student, teacher
    finally:
        stop_all(student, teacher)


def replica_factory(
    upstreams: tuple[Server, Server], tmp_path: Path, db: str
) -> tuple[Serve, list[Server]]:
    student, teacher = upstreams
    started: list[Server] = []

    def serve(name: str, **extra: str) -> Server:
        # `extra` goes into the environment last: its DISTILL_DB (the URL) wins.
        env = {"DISTILL_DB": db, "DISTILL_LOG_FLUSH_INTERVAL": "0.1", **extra}
        config = ProxyConfig(student, teacher, TEACHER_KEY, Path("unused"), tmp_path / name, env)
        server = start_distill(config, tmp_path / "logs", name=name)
        started.append(server)
        return server

    return serve, started


@pytest.fixture
def replicas(
    upstreams: tuple[Server, Server], tmp_path: Path, pg_url: str
) -> Iterator[tuple[Serve, str]]:
    serve, started = replica_factory(upstreams, tmp_path, pg_url)
    yield serve, pg_url
    stop_all(*started)


async def _traffic(servers: list[Server], prefix: str, n: int) -> list[Outcome]:
    async with httpx.AsyncClient(timeout=30) as client:
        jobs = [
            send(
                client,
                f"{servers[i % len(servers)].v1}/chat/completions",
                f"{prefix}-{i}",
                ("plain", "stream")[i % 2],
                "#student=unsure" if i % 3 == 0 else "hello",
            )
            for i in range(n)
        ]
        return await asyncio.gather(*jobs)


def logged(url: str, prefix: str) -> dict[str, int]:
    """Rows per request id (of this test's requests)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, count(*) FROM requests WHERE id LIKE %s GROUP BY id", [f"{prefix}-%"]
        ).fetchall()
    return {str(i): int(n) for i, n in rows}


def wait_rows(url: str, prefix: str, want: set[str], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        rows = logged(url, prefix)
        if want <= set(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def _log_rows(server: Server, outcome: str) -> float:
    text = httpx.get(f"{server.root}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'distill_log_rows_total{{outcome="{outcome}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no distill_log_rows_total for {outcome}")


def settled_spill_counts(servers: list[Server], timeout: float) -> tuple[float, float]:
    """Rows spilled and replayed over all replicas, once they match (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        spilled = sum(_log_rows(s, "spilled") for s in servers)
        replayed = sum(_log_rows(s, "replayed") for s in servers)
        if replayed == spilled or time.monotonic() > deadline:
            return spilled, replayed
        time.sleep(0.2)


def test_two_replicas_one_row_per_acknowledged_request(replicas: tuple[Serve, str]) -> None:
    serve, url = replicas
    servers = [serve("a"), serve("b")]
    outcomes = asyncio.run(_traffic(servers, "dual", 200))
    acked = {o.request_id for o in outcomes if o.status == 200 and o.complete}
    assert len(acked) == 200, [o for o in outcomes if not o.complete][:3]
    rows = wait_rows(url, "dual", acked, timeout=10)
    assert set(rows) == acked
    assert set(rows.values()) == {1}


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A cluster of this test alone: it is stopped and started mid-test."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with running_cluster() as cluster:
        yield cluster


def test_database_restart_mid_traffic_spills_and_replays(
    upstreams: tuple[Server, Server], tmp_path: Path, own_cluster: PgCluster
) -> None:
    url = own_cluster.create_database()
    serve, started = replica_factory(upstreams, tmp_path, url)
    try:
        # Limits on: their shared counters are down too, and must not stop the serving.
        limits = {"DISTILL_LIMIT_RPM": "100000"}
        servers = [serve("a", **limits), serve("b", **limits)]
        before = asyncio.run(_traffic(servers, "before", 40))
        own_cluster.stop()
        during = asyncio.run(_traffic(servers, "during", 60))  # served; rows spill
        own_cluster.start()
        after = asyncio.run(_traffic(servers, "after", 40))
        for prefix, outcomes in (("before", before), ("during", during), ("after", after)):
            acked = {o.request_id for o in outcomes if o.status == 200 and o.complete}
            assert len(acked) == len(outcomes), prefix  # served through the outage
            # Replay probes the database every few seconds once a write has failed.
            rows = wait_rows(url, prefix, acked, timeout=30)
            # What matters: no acknowledged row lost, none doubled by the replay.
            assert set(rows) == acked, (prefix, len(acked - set(rows)))
            assert set(rows.values()) == {1}, prefix
        # Spilling happened and everything spilled was replayed. Not a fixed count: which rows
        # spill depends on when their batch is flushed (a row of `during` that reaches the
        # writer after the restart, e.g. one waiting for its background answer, goes straight
        # in; a row of `before` not flushed before the stop spills). The replayed counter moves
        # just after a replayed file's rows are committed, so it may lag the rows seen above.
        spilled, replayed = settled_spill_counts(servers, timeout=10)
        assert spilled > 0 and replayed == spilled, (spilled, replayed)
    finally:
        stop_all(*started)


LEADER_SQL = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def leader_pid(url: str) -> int | None:
    """The `distill serve` process holding the leader lock (from its application_name)."""
    from proxy.loop.leader import LEADER_LOCK

    with psycopg.connect(url) as conn:
        row = conn.execute(LEADER_SQL, [LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFFFFFF]).fetchone()
    return int(str(row[0]).rsplit(":", 1)[1]) if row else None


def wait_for(check: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def scheduled_runs_since(url: str, since: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE trigger = 'schedule' AND created_at > %s", [since]
        ).fetchone()
    return int(row[0]) if row else 0


def test_leader_killed_another_takes_over_and_runs_the_schedule(
    replicas: tuple[Serve, str],
) -> None:
    serve, url = replicas
    fake_trainer = Path(__file__).resolve().parents[1] / "loop" / "fake_trainer.py"
    loop = {
        "DISTILL_TRAIN_SCHEDULE": "2s",
        "DISTILL_TRAINER_COMMAND": f"{sys.executable} {fake_trainer} --mode crash",
        "DISTILL_LEADER_POLL_INTERVAL": "0.5",
    }
    a = serve("a", **loop)
    assert wait_for(lambda: leader_pid(url) == a.child.popen.pid, 10)
    b = serve("b", **loop)
    time.sleep(1.0)
    assert leader_pid(url) == a.child.popen.pid  # one leader: the first
    assert wait_for(lambda: scheduled_runs_since(url, datetime(2000, 1, 1)), 15)
    signal_proxy(a, signal.SIGKILL)
    killed = datetime.now(UTC).replace(tzinfo=None)
    started = time.monotonic()
    assert wait_for(lambda: leader_pid(url) == b.child.popen.pid, 10)
    takeover = time.monotonic() - started
    assert takeover < 5, f"takeover took {takeover:.1f} s"
    assert wait_for(lambda: scheduled_runs_since(url, killed), 15)  # b's schedule fires
    with psycopg.connect(url) as conn:
        live = conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()
    assert live is not None and live[0] <= 1  # a's run in flight was failed by b's recovery


def replica_pids(url: str) -> set[int]:
    """Processes connected for the leader election (every worker of every replica)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity "
            "WHERE application_name LIKE 'distill-replica %%' AND datname = current_database()"
        ).fetchall()
    return {int(str(name).rsplit(":", 1)[1]) for (name,) in rows}


def test_workers_share_one_port_and_write_the_log_directly(replicas: tuple[Serve, str]) -> None:
    serve, url = replicas
    server = serve("w", DISTILL_WORKERS="2")
    wait_for(lambda: len(replica_pids(url)) == 2, 15)
    workers = replica_pids(url)
    assert server.child.popen.pid not in workers  # the parent only supervises
    outcomes = asyncio.run(_traffic([server], "workers", 200))
    acked = {o.request_id for o in outcomes if o.status == 200 and o.complete}
    assert len(acked) == 200
    rows = wait_rows(url, "workers", acked, timeout=10)
    assert set(rows) == acked and set(rows.values()) == {1}
    assert leader_pid(url) in workers


def test_one_keys_rate_limit_holds_across_both_replicas(replicas: tuple[Serve, str]) -> None:
    serve, url = replicas
    servers = [serve("a", DISTILL_LIMIT_RPM="10"), serve("b", DISTILL_LIMIT_RPM="10")]
    outcomes = asyncio.run(_traffic(servers, "limited", 30))
    statuses = sorted(o.status or 0 for o in outcomes)
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 20


def test_sigkilled_durable_replica_loses_no_acknowledged_row(replicas: tuple[Serve, str]) -> None:
    serve, url = replicas
    durable = {"DISTILL_LOG_DURABLE": "true", "DISTILL_LOG_FLUSH_INTERVAL": "5"}
    server = serve("k", **durable)

    async def scenario() -> list[Outcome]:
        load = asyncio.ensure_future(_traffic([server], "durable", 150))
        await asyncio.sleep(2.5)
        signal_proxy(server, signal.SIGKILL)  # rows of the last 5 s are not in the database
        return await load

    outcomes = asyncio.run(scenario())
    acked = {o.request_id for o in outcomes if o.status == 200 and o.complete}
    assert acked, "nothing was acknowledged before the kill"
    serve("k", **durable)  # the restart (same data directory) replays its journal
    rows = wait_rows(url, "durable", acked, timeout=20)
    assert acked <= set(rows) and set(rows.values()) == {1}
