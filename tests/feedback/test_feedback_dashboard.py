"""The dashboard's feedback panel in headless Chromium: gold accuracies and the per-label
table of where the student is weak, on traffic and feedback through the real app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.feedback.test_breakdown import LabelUpstream, _ask
from tests.observability.test_dashboard_browser import browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

ADMIN = "adm-feedback-dash-SECRET"


def test_dashboard_shows_gold_accuracy_and_weak_labels(
    make_proxy: Callable[..., Any],
    browser: Any,  # noqa: F811
) -> None:
    with make_proxy(
        student=LabelUpstream(student=True), teacher=LabelUpstream(), admin_key=ADMIN
    ) as h:
        served = [_ask(h, i, "card_arrival", "cards") for i in range(4)]
        fallback = [_ask(h, 10 + i, "exchange_rate", "fx") for i in range(3)]
        for request_id, body in (
            (served[0], {"rating": "good"}),
            (fallback[0], {"correction": "exchange_rate"}),
        ):
            resp = httpx.post(
                f"{h.url}/v1/feedback",
                json={"request_id": request_id, **body},
                headers={"authorization": f"Bearer {ADMIN}"},
            )
            assert resp.status_code == 200
        h.flush()
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{h.url}/dashboard?since=all")
        page.fill("#key", ADMIN)
        page.click("button[type=submit]")
        page.wait_for_function(
            "document.querySelector('#weak-body').textContent.includes('exchange_rate')",
            timeout=15000,
        )
        gold = page.text_content("#gold-summary") or ""
        assert "2 gold rows, 0 rated bad" in gold and "student 0.500 [" in gold
        rows = page.eval_on_selector_all(
            "#weak-body tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        by_label = {r[0]: r for r in rows}
        assert by_label["card_arrival"][1:3] == ["4", "100.0%"]
        assert by_label["exchange_rate"][2:4] == ["0.0%", "0.000 (n=3)"]
        assert page.text_content("#never-served") == "never served by the student: exchange_rate"
        # Open-ended tasks are read per tag: the same table, grouped by x-distill-tag.
        page.select_option("#weak-by", "tag")
        page.wait_for_function(
            "document.querySelector('#weak-body').textContent.includes('fx')", timeout=15000
        )
        rows = page.eval_on_selector_all(
            "#weak-body tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        by_tag = {r[0]: r for r in rows}
        assert page.text_content("#weak-name") == "tag"
        assert by_tag["cards"][1:3] == ["4", "100.0%"] and by_tag["fx"][1:3] == ["3", "0.0%"]
        assert not errors, errors
