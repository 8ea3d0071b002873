"""The whole app on a PostgreSQL log: every read and write path the routers use.

The SQL is written once in DuckDB's dialect; this runs each endpoint that reaches the
log (stats, logs, dashboard data, metrics, runs, students, feedback, the CLI's reads)
against a real PostgreSQL, so a statement the translation cannot carry fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.cli import main

pytestmark = pytest.mark.postgres

ADMIN = "admin-key-PG"


def test_every_log_endpoint_works_on_postgres(
    make_proxy: Callable[..., Any], pg_url: str, tmp_path: Path
) -> None:
    with make_proxy(db=pg_url, admin_key=ADMIN) as h:
        client = h.client()
        ids = []
        for i in range(6):
            resp = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"question {i} with 50% of a %s"}],
            )
            ids.append(resp.headers["x-request-id"])
        h.flush()
        auth = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=h.url, headers=auth, timeout=10) as http:
            stats = http.get("/admin/stats").json()
            assert stats["summary"]["requests"] == 6
            assert len(http.get("/admin/logs", params={"n": 3}).json()["rows"]) == 3
            assert http.get("/admin/dashboard/data", params={"since": "24h"}).status_code == 200
            assert "distill_log_rows_total" in http.get("/metrics").text
            assert http.get("/admin/runs").status_code == 200
            assert http.get("/admin/students").status_code == 200
            assert http.get("/admin/calibration").status_code == 200
            feedback = http.post("/v1/feedback", json={"request_id": ids[0], "rating": "good"})
            assert feedback.status_code == 200, feedback.text
        rows = h.rows()  # the harness reads through the server's own reader
        assert {r["id"] for r in rows} == set(ids)
        assert all(isinstance(r["request_json"], str) for r in rows)  # JSON as text, as DuckDB


def test_cli_reads_a_shared_log_while_servers_run(
    make_proxy: Callable[..., Any],
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with make_proxy(db=pg_url) as h:
        h.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        h.flush()
        monkeypatch.setenv("DISTILL_DB", pg_url)
        monkeypatch.setenv("DISTILL_SERVER_URL", "http://127.0.0.1:9")  # no admin API: the db
        assert main(["stats", "--json"]) == 0
        out = capsys.readouterr().out
        assert '"requests": 1' in out
        for by in ("label", "tag"):
            assert main(["stats", "--by", by, "--json"]) == 0, by
        assert main(["logs", "-n", "5", "--json"]) == 0
        assert main(["runs", "--json"]) == 0
