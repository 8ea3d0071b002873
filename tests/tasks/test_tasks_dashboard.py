"""The dashboard's "Tasks" table in headless Chromium: one row per task of `GET /admin/tasks`
(two named tasks through the real app, and an excluded one), and the table's tolerance of
what the endpoint may send (a per-task serving block, missing keys, a hostile name)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ProxyHarness
from tests.observability.test_dashboard_browser import browser  # noqa: F401 (fixture)
from tests.observability.traffic import MODEL, unsure_student
from tests.tasks.helpers import SYSTEM_A, SYSTEM_B, messages

pytestmark = pytest.mark.browser

ADMIN = "adm-tasks-dash-SECRET-9"
ROWS = "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
# Safe on the login page too, which the predicate may still see right after the click.
TASKS_READY = "window.distillTasks && window.distillTasks.state.status === 'ready'"
HOSTILE = '<img src=x onerror="window.pwned = 1">'


def _traffic(h: ProxyHarness) -> None:
    """Task "intents": 3 requests, 2 served by the (confident) student, 1 fallback; task
    "cities": 2 forced teacher answers; task "private" (excluded): 1 request."""
    client = h.client()
    for i in range(3):
        if i == 2:
            h.student.script.append(unsure_student)
        client.chat.completions.create(
            model=MODEL, messages=messages(SYSTEM_A), extra_headers={"x-distill-task": "intents"}
        )
    for _ in range(2):
        client.chat.completions.create(
            model=MODEL,
            messages=messages(SYSTEM_B),
            extra_headers={"x-distill-task": "cities", "x-distill-route": "teacher"},
        )
    client.chat.completions.create(
        model=MODEL, messages=messages("Secret."), extra_headers={"x-distill-task": "private"}
    )
    h.flush()


def _open(
    browser: Any,  # noqa: F811
    h: ProxyHarness,
    errors: list[str],
    tasks_report: dict[str, Any] | None = None,
) -> Any:
    """The dashboard after the login form; with `tasks_report`, GET /admin/tasks answers it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if tasks_report is not None:
        body = json.dumps(tasks_report)
        page.route(
            "**/admin/tasks?*",
            lambda route: route.fulfill(status=200, content_type="application/json", body=body),
        )
    page.goto(f"{h.url}/dashboard?since=all")
    page.fill("#key", ADMIN)
    page.click("button[type=submit]")
    return page


def test_the_tasks_table_shows_each_named_task(
    make_proxy: Callable[..., Any],
    browser: Any,  # noqa: F811
) -> None:
    with make_proxy(admin_key=ADMIN, tasks={"private": {"exclude": True}}) as h:
        _traffic(h)
        errors: list[str] = []
        page = _open(browser, h, errors)
        page.wait_for_function(
            f"{TASKS_READY} && document.querySelector('#tasks-body').innerText.includes('cities')",
            timeout=15000,
        )
        rows = {r[0]: r for r in page.eval_on_selector_all("#tasks-body tr", ROWS)}
        assert set(rows) == {"intents", "cities", "private excluded"}
        intents, cities = rows["intents"], rows["cities"]
        assert intents[1:3] == ["3", "66.7%"]  # requests, student share
        assert intents[3] == "0.000 (n=1)"  # "Maybe Lyon" against the teacher's answer
        assert cities[1:4] == ["2", "0.0%", "–"]
        assert intents[6] == "base (shared)" and intents[7] == "-0.500"  # the static threshold
        assert intents[8] == "static" and intents[5].startswith("$")
        assert rows["private excluded"][6:9] == ["teacher only", "–", "excluded"]
        assert page.get_attribute("#tasks-body tr:nth-child(3)", "class") == "excluded"
        # The panels that share the formatting helpers (dashboard_format.js) still draw.
        page.wait_for_function(
            "document.querySelector('#weak-body td').textContent !== 'loading…'", timeout=15000
        )
        weak = page.eval_on_selector_all("#weak-body tr", ROWS)
        assert sum(int(r[1]) for r in weak) == 6 and page.text_content("#k-requests") == "6"
        assert page.text_content("#runs-body") == "no runs yet"
        assert not errors, errors


def test_the_tasks_table_takes_what_the_endpoint_sends_as_text(
    make_proxy: Callable[..., Any],
    browser: Any,  # noqa: F811
) -> None:
    """A per-task serving block (shared: false), a task without one, an extra key, and a
    name that would be markup if it were ever parsed as HTML (the endpoint refuses such
    names today; the table must not depend on it)."""
    report = {
        "since": None,
        "serving": {"version": "v2"},
        "tasks": [
            {"task": HOSTILE, "requests": 5, "student_share": 0.4, "agreement": 0.9,
             "agreement_n": 10, "gold_accuracy": None, "gold_n": 0, "savings_usd": 0.5,
             "excluded": False, "new_column": [1, 2],
             "serving": {"route": "cascade", "version": "v7", "shared": False,
                         "threshold": 0.61, "status": "held", "quality_target": 0.9}},
            {"task": "bare", "requests": 1},
        ],
    }  # fmt: skip
    with make_proxy(admin_key=ADMIN) as h:
        errors: list[str] = []
        page = _open(browser, h, errors, tasks_report=report)
        page.wait_for_function(TASKS_READY, timeout=15000)
        rows = page.eval_on_selector_all("#tasks-body tr", ROWS)
        assert rows[0] == [
            HOSTILE, "5", "40.0%", "0.900 (n=10)", "–", "$0.5000", "v7", "0.610",
            "held · target 0.9",
        ]  # fmt: skip
        assert rows[1][:2] == ["bare", "1"] and rows[1][6:] == ["–", "none", "–"]
        assert page.query_selector("#tasks-body img") is None
        assert page.evaluate("window.pwned") is None
        assert not errors, errors
