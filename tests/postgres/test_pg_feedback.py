"""Feedback on a PostgreSQL log: the API, the latest feedback in the snapshot, the
breakdown, retention; the same SQL as on DuckDB (issue 15 on the issue 16 backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from proxy.logstore.snapshot import export_snapshot
from proxy.observability.breakdown import breakdown, feedback_overview
from proxy.privacy import purge_once
from tests.feedback.test_breakdown import LabelUpstream

pytestmark = pytest.mark.postgres

ADMIN = "adm-pg-feedback-SECRET"


def _ask(h: Any, i: int, label: str) -> str:
    raw = h.client(api_key="key-a").chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": f"query {i} about {label}"}]
    )
    return str(raw.headers["x-request-id"])


def _post(h: Any, key: str | None, **body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{h.url}/v1/feedback", json=body, headers=headers)


def test_feedback_on_postgres(make_proxy: Callable[..., Any], pg_url: str, tmp_path: Path) -> None:
    with make_proxy(
        student=LabelUpstream(student=True),
        teacher=LabelUpstream(),
        db=pg_url,
        api_keys="key-a,key-b",
        admin_key=ADMIN,
    ) as h:
        ids = [_ask(h, i, "card_arrival") for i in range(2)]
        ids += [_ask(h, 10 + i, "exchange_rate") for i in range(2)]
        assert _post(h, "key-b", request_id=ids[0], rating="bad").status_code == 404
        assert _post(h, "key-a", request_id="nope", rating="bad").status_code == 404
        assert _post(h, "key-a", request_id=ids[0], rating="bad").status_code == 200
        assert _post(h, "key-a", request_id=ids[0], rating="good").status_code == 200
        assert _post(h, ADMIN, request_id=ids[2], correction="exchange_rate").status_code == 200
        h.flush()
        writer = h.app.state.writer
        snapshot = export_snapshot(writer, tmp_path / "snap.parquet")
        table = writer.read(lambda cur: breakdown(cur, "label", None))
        overview = writer.read(lambda cur: feedback_overview(cur, None))
        assert asyncio.run(purge_once(writer, 0.0)) >= 0
        kept = writer.read(
            lambda cur: cur.execute(
                "SELECT rating, correction FROM feedback ORDER BY created_at"
            ).fetchall()
        )
    with duckdb.connect() as conn:
        rows = dict(
            (r[0], r[1:])
            for r in conn.execute(
                "SELECT id, feedback_rating, feedback_correction, feedback_count "
                f"FROM read_parquet('{snapshot}')"
            ).fetchall()
        )
    assert rows[ids[0]] == ("good", None, 2)  # the latest counts, all are kept
    assert rows[ids[2]] == (None, "exchange_rate", 1)
    assert rows[ids[1]] == (None, None, None)
    groups = {g["name"]: g for g in table["groups"]}
    assert groups["exchange_rate"]["student_share"] == 0.0
    assert table["never_served"] == ["exchange_rate"]
    assert overview["gold_rows"] == 2
    assert [list(r) for r in kept] == [["bad", None], ["good", None], [None, None]]


def test_feedback_import_without_a_server(
    make_proxy: Callable[..., Any],
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from proxy.cli import main
    from proxy.logstore.postgres import open_reader
    from tests.server_thread import free_port

    with make_proxy(db=pg_url, api_keys="key-a", admin_key=ADMIN) as h:
        request_id = _ask(h, 1, "card_arrival")
    lines = tmp_path / "fb.jsonl"
    lines.write_text(
        f'{{"request_id": "{request_id}", "rating": "bad"}}\n'
        f'{{"request_id": "{request_id}", "correction": "lost_card"}}\n'
    )
    monkeypatch.delenv("DISTILL_CONFIG", raising=False)
    monkeypatch.setenv("DISTILL_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DISTILL_DB", pg_url)
    monkeypatch.setenv("DISTILL_ADMIN_KEY", ADMIN)
    assert main(["feedback", "import", str(lines)]) == 0
    out = capsys.readouterr().out
    assert "stored 2 feedback(s) in the PostgreSQL log" in out and pg_url not in out
    with open_reader(pg_url) as cur:
        rows = cur.execute(
            "SELECT rating, correction, source FROM feedback ORDER BY created_at"
        ).fetchall()
    assert [tuple(r) for r in rows] == [("bad", None, "import"), (None, "lost_card", "import")]
