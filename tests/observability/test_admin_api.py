"""Admin read API (/admin/stats, /admin/logs, /admin/dashboard/data) and dashboard login."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest

from proxy.observability.dashboard_auth import COOKIE, issue_token, token_valid
from proxy.settings import Settings
from tests.observability.traffic import drive

ADMIN = "adm-key-0123456789-SECRET"
BEARER = {"authorization": f"Bearer {ADMIN}"}
FAILING_TRAINER = f"{sys.executable} -c 'import sys; sys.exit(3)'"


def test_stats_and_logs_need_the_admin_key(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(admin_key=ADMIN) as h:
        drive(h)
        assert httpx.get(f"{h.url}/admin/stats").status_code == 401
        assert (
            httpx.get(f"{h.url}/admin/stats", headers={"authorization": "Bearer nope"}).status_code
            == 403
        )
        stats = httpx.get(f"{h.url}/admin/stats?since=1h", headers=BEARER).json()
        assert stats["summary"]["requests"] == 5
        assert stats["summary"]["routes"] == {"student": 2, "teacher": 3}
        assert stats["summary"]["fallback_rate"] == pytest.approx(0.6)
        assert stats["summary"]["savings_pct"] == pytest.approx(
            100 * stats["summary"]["savings_usd"] / stats["summary"]["counterfactual_cost_usd"]
        )
        assert stats["student_version"] == "base"
        assert {r["route"] for r in stats["latency"]} == {"student", "teacher"}
        bad = httpx.get(f"{h.url}/admin/stats?since=yesterday", headers=BEARER)
        assert bad.status_code == 400 and "since" in bad.text


def test_logs_tail_and_cursor(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(admin_key=ADMIN) as h:
        drive(h)
        rows = httpx.get(f"{h.url}/admin/logs?n=3", headers=BEARER).json()["rows"]
        assert len(rows) == 3
        assert [r["created_at"] for r in rows] == sorted(r["created_at"] for r in rows)
        first = rows[0]
        after = httpx.get(
            f"{h.url}/admin/logs",
            headers=BEARER,
            params={"n": 10, "after_ts": first["created_at"], "after_id": first["id"]},
        ).json()["rows"]
        assert [r["id"] for r in after] == [r["id"] for r in rows[1:]]
        assert "request_json" not in rows[0]  # bodies stay out of the tail


def test_dashboard_data_has_every_chart(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:  # no keys at all: loopback is admin
        drive(h)
        data = httpx.get(f"{h.url}/admin/dashboard/data?since=1h").json()
    assert sum(b["requests"] for b in data["timeseries"]) == 5
    assert data["confidence"]["count"] == 3
    assert sum(data["confidence"]["served"]) == 2 and sum(data["confidence"]["fallback"]) == 1
    assert data["agreement"][0]["all_pairs"] == 1  # the low-confidence answer vs the teacher's
    assert [v["name"] for v in data["versions"]] == ["base"]
    assert data["threshold"] == -0.5


def test_browser_login_exchanges_the_key_for_a_signed_cookie(
    make_proxy: Callable[..., Any],
) -> None:
    # Generous timeouts: a loaded CI machine once took over 5 s (httpx's default) for one page.
    get, post = partial(httpx.get, timeout=30.0), partial(httpx.post, timeout=30.0)
    with make_proxy(admin_key=ADMIN, trainer_command=FAILING_TRAINER) as h:
        page = get(f"{h.url}/dashboard")
        assert page.status_code == 401 and 'action="/dashboard/login"' in page.text
        wrong = post(f"{h.url}/dashboard/login", data={"key": "guess"})
        assert wrong.status_code == 401 and COOKIE not in wrong.cookies
        ok = post(f"{h.url}/dashboard/login", data={"key": ADMIN})
        assert ok.status_code == 303
        set_cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace(
            "Strict", "strict"
        )
        assert ADMIN not in set_cookie
        with httpx.Client(
            base_url=h.url, cookies={COOKIE: ok.cookies[COOKIE]}, timeout=30.0
        ) as browser:
            assert "chart-cost" in browser.get("/dashboard").text
            assert browser.get("/admin/dashboard/data").status_code == 200
            # A cookie alone cannot act: cross-site forms cannot send the CSRF header.
            assert browser.post("/dashboard/api/runs").status_code == 403
            started = browser.post("/dashboard/api/runs", headers={"x-distill-csrf": "1"})
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
        assert _wait_run_finished(h, run_id) == "failed"  # the fake trainer exits with 3
        forged = get(f"{h.url}/admin/stats", cookies={COOKIE: "9999999999.deadbeef"})
        assert forged.status_code == 401
        back = post(f"{h.url}/dashboard/login", data={"key": ADMIN, "next": "/dashboard?since=7d"})
        assert back.headers["location"] == "/dashboard?since=7d"
        for evil in ("https://evil.example/", "//evil.example/dashboard", "/admin/stats"):
            away = post(f"{h.url}/dashboard/login", data={"key": ADMIN, "next": evil})
            assert away.headers["location"] == "/dashboard"
        assert 'value="/dashboard?since=all"' in get(f"{h.url}/dashboard?since=all").text


def _wait_run_finished(h: Any, run_id: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    status = "missing"
    while time.monotonic() < deadline:
        rows = h.app.state.writer.read(
            lambda cur: cur.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchall()
        )
        status = rows[0][0] if rows else "missing"
        if status not in ("running", "missing"):
            return str(status)
        time.sleep(0.1)
    return status


def test_dashboard_is_open_on_loopback_without_keys(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        page = httpx.get(f"{h.url}/dashboard")
        assert page.status_code == 200 and "chart-fallback" in page.text
        js = httpx.get(f"{h.url}/dashboard/static/vendor/chart.js/chart.umd.min.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        for sneaky in ("..%2F..%2Fsettings.py", "../dashboard.html", "dashboard.html"):
            assert httpx.get(f"{h.url}/dashboard/static/{sneaky}").status_code == 404


def test_dashboard_has_the_tasks_table_and_no_html_injection(
    make_proxy: Callable[..., Any],
) -> None:
    """The page carries the Tasks table, its script reads GET /admin/tasks, and no script
    parses markup: names in the tables (tasks, tags, labels) come from clients."""
    with make_proxy() as h:
        page = httpx.get(f"{h.url}/dashboard").text
        assert 'id="tasks-body"' in page
        scripts = ["dashboard_format.js", "dashboard_tasks.js", "dashboard.js"]
        positions = [page.index(f"/dashboard/static/{name}") for name in scripts]
        assert positions == sorted(positions)  # deferred scripts run in order: helpers first
        sources = {name: httpx.get(f"{h.url}/dashboard/static/{name}") for name in scripts}
        assert all(r.status_code == 200 for r in sources.values())
        assert '"/admin/tasks?since="' in sources["dashboard_tasks.js"].text
        assert "distillTasks.load(" in sources["dashboard.js"].text
        for name, resp in sources.items():
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
                assert sink not in resp.text, (name, sink)


def test_session_tokens_expire_and_follow_the_key() -> None:
    settings = Settings(admin_key=ADMIN, dashboard_session_hours=1)
    token = issue_token(settings, now=1000.0)
    assert token is not None and ADMIN not in token
    assert token_valid(settings, token, now=1000.0 + 3599)
    assert not token_valid(settings, token, now=1000.0 + 3601)
    assert not token_valid(Settings(admin_key="rotated"), token, now=1000.0)
    assert issue_token(Settings()) is None


def test_rollback_button_relays_the_run_loop_answer(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(admin_key=ADMIN) as h:
        answer = httpx.post(f"{h.url}/dashboard/api/rollback", headers=BEARER)
        # Nothing was promoted yet: the run loop's 409 comes back unchanged.
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "nothing_to_roll_back"
        assert httpx.post(f"{h.url}/dashboard/api/rollback").status_code == 401
