"""`distill train --now`, `distill runs`, `distill rollback` against a running server."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from tests.loop.conftest import LoopFactory
from tests.server_thread import free_port


def test_train_now_follows_the_run_then_runs_and_rollback(
    loop_proxy: LoopFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with loop_proxy(trainer=("--sleep", "0.3")) as lh:
        lh.traffic(6)
        monkeypatch.setenv("DISTILL_SERVER_URL", lh.h.url)
        assert main(["train", "--now", "--interval", "0.05"]) == 0
        out = capsys.readouterr().out
        run_id = out.split()[1]
        assert f"run {run_id} started on {lh.h.url}" in out
        assert f"run {run_id}: running" in out  # progress while it trained
        assert f"run {run_id} promoted: candidate agreement 1.000" in out
        assert main(["runs"]) == 0
        table = capsys.readouterr().out
        assert run_id in table and "promoted" in table and "manual" in table
        assert main(["rollback"]) == 0
        assert "serving student-base (version base) again" in capsys.readouterr().out
        assert lh.active.current.version == "base"
        assert main(["rollback"]) == 0  # toggles forward again
        capsys.readouterr()
        assert lh.active.current.version == run_id


def test_without_a_server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    loop_proxy: LoopFactory,
) -> None:
    with loop_proxy() as lh:
        lh.traffic(4)
        run_id = lh.wait_run(lh.start_run())["id"]
    monkeypatch.setenv("DISTILL_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DISTILL_DB", str(tmp_path / "distill.duckdb"))
    assert main(["train", "--now"]) == 1
    assert "--now` asks a running `distill serve`" in capsys.readouterr().err
    assert main(["rollback"]) == 1
    assert main(["runs", "--json"]) == 0
    out = capsys.readouterr().out
    assert run_id in out and '"status": "promoted"' in out
