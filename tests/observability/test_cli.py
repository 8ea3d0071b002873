"""`distill stats` / `distill logs` against a running server (admin API) and a stopped one
(the DuckDB file, read-only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.cli import main
from tests.observability.traffic import MODEL, QUESTION, drive
from tests.server_thread import free_port

ADMIN = "adm-cli-key-SECRET-42"
ROOT = Path(__file__).resolve().parents[2]


def _use(monkeypatch: pytest.MonkeyPatch, url: str, db: Path, key: str | None = ADMIN) -> None:
    monkeypatch.delenv("DISTILL_CONFIG", raising=False)
    monkeypatch.setenv("DISTILL_SERVER_URL", url)
    monkeypatch.setenv("DISTILL_DB", str(db))
    if key is None:
        monkeypatch.delenv("DISTILL_ADMIN_KEY", raising=False)
    else:
        monkeypatch.setenv("DISTILL_ADMIN_KEY", key)


def test_stats_and_logs_from_a_running_server(
    make_proxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with make_proxy(admin_key=ADMIN) as h:
        drive(h)
        # A DB path that does not exist: the numbers can only come from the server.
        _use(monkeypatch, h.url, tmp_path / "elsewhere.duckdb")
        assert main(["stats", "--since", "1h"]) == 0
        out = capsys.readouterr().out
        assert f"from server {h.url}" in out
        assert "fallback rate" in out and "60.0%" in out and "saved" in out
        assert "latency by route" in out and "student" in out
        assert main(["stats", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["summary"]["requests"] == 5 and report["log"]["dropped"] == 0
        assert main(["logs", "--tail", "-n", "2"]) == 0
        out = capsys.readouterr().out
        assert "last 2 requests" in out and "forced" in out
        _use(monkeypatch, h.url, tmp_path / "elsewhere.duckdb", key="wrong")
        assert main(["stats"]) == 1
        err = capsys.readouterr().err
        assert "DISTILL_ADMIN_KEY" in err and "wrong" not in err.replace("DISTILL", "")


def test_stats_and_logs_from_the_file_when_the_server_is_stopped(
    make_proxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with make_proxy(admin_key=ADMIN) as h:
        drive(h)
        db = h.settings.db
    _use(monkeypatch, f"http://127.0.0.1:{free_port()}", db)
    assert main(["stats", "--since", "all"]) == 0
    out = capsys.readouterr().out
    assert f"from file {db}" in out and "60.0%" in out
    assert main(["logs", "-n", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(r["cost_usd"] > 0 for r in rows)


def test_no_server_and_no_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _use(monkeypatch, f"http://127.0.0.1:{free_port()}", tmp_path / "none.duckdb")
    assert main(["stats"]) == 1
    assert "no request log" in capsys.readouterr().err
    assert main(["stats", "--since", "soon"]) == 1


def test_logs_follow_prints_new_requests(make_proxy: Callable[..., Any], tmp_path: Path) -> None:
    with make_proxy(admin_key=ADMIN) as h:
        h.client().chat.completions.create(model=MODEL, messages=QUESTION)
        h.flush()
        env = {
            **os.environ,
            "DISTILL_SERVER_URL": h.url,
            "DISTILL_ADMIN_KEY": ADMIN,
            "DISTILL_DB": str(tmp_path / "elsewhere.duckdb"),
        }
        env.pop("DISTILL_CONFIG", None)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy.cli",
                "logs",
                "--follow",
                "--json",
                "-n",
                "5",
                "--interval",
                "0.1",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = json.loads(proc.stdout.readline())
            assert first["route"] == "student"
            h.client().chat.completions.create(
                model=MODEL,
                messages=QUESTION,
                extra_headers={"x-distill-route": "teacher", "x-request-id": "follow-me"},
            )
            h.flush()
            deadline = time.monotonic() + 15
            line = proc.stdout.readline()
            assert time.monotonic() < deadline
            new = json.loads(line)
            assert new["id"] == "follow-me" and new["route"] == "teacher"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
