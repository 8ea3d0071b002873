"""`distill feedback REQUEST_ID --good|--bad [--correction TEXT]` and `distill feedback
import FILE.jsonl`: through a running server (admin key), or into the stopped server's file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from proxy.cli import main
from tests.server_thread import free_port

ADMIN = "adm-feedback-key-SECRET-7"


def _use(monkeypatch: pytest.MonkeyPatch, url: str, db: Path) -> None:
    monkeypatch.delenv("DISTILL_CONFIG", raising=False)
    monkeypatch.setenv("DISTILL_SERVER_URL", url)
    monkeypatch.setenv("DISTILL_DB", str(db))
    monkeypatch.setenv("DISTILL_ADMIN_KEY", ADMIN)


def _ask(h: Any, request_id: str) -> None:
    h.client(api_key="key-carol").chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": f"question {request_id}?"}],
        extra_headers={"x-request-id": request_id, "x-distill-route": "teacher"},
    )


def _jsonl(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(
            "SELECT request_id, rating, correction, source FROM feedback ORDER BY created_at, id"
        ).fetchall()


def test_feedback_commands_through_the_running_server(
    make_proxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with make_proxy(api_keys="key-carol", admin_key=ADMIN) as h:
        _ask(h, "cli-1")
        _ask(h, "cli-2")
        # A DB path that does not exist: the feedback can only go to the server.
        _use(monkeypatch, h.url, tmp_path / "elsewhere.duckdb")
        assert main(["feedback", "cli-1", "--bad", "--correction", "Lyon"]) == 0
        assert f"stored 1 feedback(s) in server {h.url}" in capsys.readouterr().out
        assert main(["feedback", "cli-404", "--good"]) == 1
        assert "unknown request id(s): cli-404" in capsys.readouterr().err
        lines = _jsonl(
            tmp_path / "fb.jsonl",
            {"request_id": "cli-2", "rating": "good"},
            {"request_id": "cli-1", "rating": "good", "note": "changed my mind"},
        )
        assert main(["feedback", "import", str(lines)]) == 0
        assert "stored 2 feedback(s)" in capsys.readouterr().out
        db = h.settings.db
    assert _rows(db) == [
        ("cli-1", "bad", "Lyon", "cli"),
        ("cli-2", "good", None, "import"),
        ("cli-1", "good", None, "import"),
    ]


def test_import_into_the_file_when_no_server_runs(
    make_proxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with make_proxy(api_keys="key-carol", admin_key=ADMIN) as h:
        for i in range(3):
            _ask(h, f"file-{i}")
        db = h.settings.db
    _use(monkeypatch, f"http://127.0.0.1:{free_port()}", db)
    bad = _jsonl(tmp_path / "bad.jsonl", {"request_id": "file-0", "rating": "meh"}, {"x": 1})
    assert main(["feedback", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "2 invalid line(s), nothing stored" in err and "line 1: rating" in err
    lines = _jsonl(
        tmp_path / "fb.jsonl",
        {"request_id": "file-0", "rating": "bad"},
        {"request_id": "file-0", "correction": "the right answer"},
        {"request_id": "file-1", "rating": "good"},
        {"request_id": "nope", "rating": "good"},
    )
    assert main(["feedback", "import", str(lines)]) == 1  # one unknown id
    captured = capsys.readouterr()
    assert f"stored 3 feedback(s) in file {db}" in captured.out
    assert "1 unknown request id(s): nope" in captured.err
    assert main(["feedback", "file-2", "--good"]) == 0
    rows = _rows(db)
    assert rows[:2] == [
        ("file-0", "bad", None, "import"),
        ("file-0", None, "the right answer", "import"),
    ]
    assert rows[-1] == ("file-2", "good", None, "cli")
    assert main(["feedback", "file-2"]) == 1  # says nothing
    assert "at least one of rating, correction, note" in capsys.readouterr().err
