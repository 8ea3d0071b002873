"""DuckDB write failures while serving, end to end through the app: requests keep being
served, rows spill to the bounded journal and are replayed; a metric and a log line say
so. Two seams: the writer's insert function (always), and a real full filesystem (a tiny
tmpfs; needs mount rights, skipped without)."""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

import proxy.app
from proxy.logstore.rows import insert_batch
from proxy.logstore.writer import LogWriter
from proxy.settings import Settings

MESSAGES: Any = [{"role": "user", "content": "hello"}]


class FlakyDisk:
    """An insert that fails like a full disk while `full` is set."""

    def __init__(self) -> None:
        self.full = threading.Event()

    def __call__(self, conn: duckdb.DuckDBPyConnection, columns: Any, ignore: bool) -> None:
        if self.full.is_set():
            raise duckdb.IOException("IO Error: No space left on device")
        insert_batch(conn, columns, ignore)


def metric(url: str, outcome: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf'distill_log_rows_total{{outcome="{outcome}"}} ([0-9.e+]+)', text)
    assert match, f"no {outcome} metric in /metrics"
    return float(match.group(1))


def serve_some(h: Any, n: int, prefix: str) -> list[str]:
    client = h.client()
    ids = []
    for i in range(n):
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, extra_headers={"x-request-id": f"{prefix}-{i}"}
        )
        assert raw.http_response.status_code == 200 and raw.parse().choices
        ids.append(raw.headers["x-request-id"])
    return ids


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_write_failures_spill_and_replay(
    make_proxy: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FlakyDisk()

    def build_writer(settings: Settings) -> LogWriter:
        return LogWriter.from_settings(settings, insert=disk)

    monkeypatch.setattr(proxy.app, "build_writer", build_writer)
    caplog.set_level(logging.ERROR)
    with make_proxy() as h:
        before = serve_some(h, 3, "ok")
        h.flush()
        disk.full.set()
        during = serve_some(h, 10, "full")  # served while the log store fails
        wait_until(lambda: h.app.state.writer.stats.spilled >= 10)
        assert metric(h.url, "spilled") >= 10
        assert any("spilling" in r.getMessage() for r in caplog.records)
        assert list((h.settings.data_dir / "spill").iterdir())  # on disk, not in memory
        disk.full.clear()
        h.flush()  # the writer replays the journal once DuckDB accepts writes again
        rows = {r["id"] for r in h.rows()}
        assert set(before + during) <= rows
        stats = h.app.state.writer.stats
        assert stats.replayed >= 10 and stats.dropped == 0
        assert metric(h.url, "replayed") >= 10


def test_a_full_journal_drops_rows_loudly_but_keeps_serving(
    make_proxy: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FlakyDisk()
    disk.full.set()

    def build_writer(settings: Settings) -> LogWriter:
        return LogWriter.from_settings(settings, insert=disk)

    monkeypatch.setattr(proxy.app, "build_writer", build_writer)
    caplog.set_level(logging.ERROR)
    with make_proxy(spill_max_bytes=0) as h:
        serve_some(h, 5, "lost")
        wait_until(lambda: h.app.state.writer.stats.dropped >= 5)
        assert metric(h.url, "dropped") >= 5
        assert any("DROPPED" in r.getMessage() for r in caplog.records)


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


@pytest.mark.chaos
def test_real_full_disk_while_serving(make_proxy: Any, tmp_path: Path) -> None:
    with (
        tiny_filesystem(tmp_path / "tiny", "16m") as tiny,
        make_proxy(db=tiny / "distill.duckdb") as h,
    ):
        before = serve_some(h, 3, "ok")
        h.flush()
        filler = fill(tiny)
        during = serve_some(h, 20, "full")
        wait_until(lambda: h.app.state.writer.stats.spilled >= 1)
        assert h.app.state.writer.stats.write_errors >= 1
        filler.unlink()
        wait_until(lambda: not h.app.state.writer.stats.spill_bytes, timeout=20)
        rows = {r["id"] for r in h.rows()}
        assert set(before + during) <= rows
        assert h.app.state.writer.stats.dropped == 0
