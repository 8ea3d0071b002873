"""`GET /admin/tasks`, `distill stats --by task` (server and file) and the `task` label of
`distill_requests_total`, through the real app with fake upstreams."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.cli import main
from proxy.observability.costs import CostBreakdown
from proxy.observability.metrics import MAX_TASK_LABELS, Metrics
from tests.conftest import ProxyHarness
from tests.observability.test_metrics import scrape, value
from tests.observability.traffic import MODEL, unsure_student
from tests.server_thread import free_port
from tests.tasks.helpers import SYSTEM_A, messages

ADMIN = "adm-tasks-key-SECRET-7"
TABLES = {"private": {"exclude": True}, "quiet": {"quality_target": 0.95}}


def _traffic(h: ProxyHarness) -> None:
    """Task "intents": 2 confident student answers (one rated good), 1 fallback (a pair);
    task "faq": 1 forced teacher answer; task "private" (excluded, TABLES): 1 request."""
    client = h.client()
    named = {"x-distill-task": "intents"}
    first = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages(SYSTEM_A), extra_headers=named
    )
    client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_A), extra_headers=named)
    h.student.script.append(unsure_student)
    client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_A), extra_headers=named)
    client.chat.completions.create(
        model=MODEL,
        messages=messages("FAQ."),
        extra_headers={"x-distill-task": "faq", "x-distill-route": "teacher"},
    )
    client.chat.completions.create(
        model=MODEL, messages=messages("Secret."), extra_headers={"x-distill-task": "private"}
    )
    feedback = httpx.post(
        f"{h.url}/v1/feedback",
        json={"request_id": first.headers["x-request-id"], "rating": "good"},
    )
    assert feedback.status_code == 200, feedback.text
    h.flush()


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task"]: t for t in report["tasks"]}


def _check(report: dict[str, Any]) -> None:
    tasks = _by_name(report)
    assert [t["task"] for t in report["tasks"]] == ["intents", "faq", "private", "quiet"]
    intents = tasks["intents"]
    assert (intents["requests"], intents["student_served"], intents["teacher_calls"]) == (3, 2, 1)
    assert intents["student_share"] == pytest.approx(2 / 3)
    assert intents["agreement_n"] == 1 and intents["agreement"] < 0.5  # "Maybe Lyon" vs Paris
    assert (intents["gold_n"], intents["gold_accuracy"]) == (1, 1.0)
    assert intents["savings_usd"] == pytest.approx(
        intents["counterfactual_cost_usd"] - intents["cost_usd"]
    )
    assert intents["serving"]["version"] == "base" and intents["serving"]["shared"] is True
    faq = tasks["faq"]
    assert (faq["student_share"], faq["teacher_served"], faq["agreement"]) == (0.0, 1, None)
    assert faq["savings_usd"] == pytest.approx(0.0)
    private = tasks["private"]
    assert private["excluded"] and private["excluded_requests"] == 1
    assert private["serving"]["status"] == "excluded"
    quiet = tasks["quiet"]  # configured, no traffic yet
    assert quiet["requests"] == 0 and quiet["serving"]["quality_target"] == 0.95
    assert report["serving"]["version"] == "base"


def test_admin_tasks_lists_each_task(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(admin_key=ADMIN, tasks=TABLES) as h:
        _traffic(h)
        auth = {"authorization": f"Bearer {ADMIN}"}
        assert httpx.get(f"{h.url}/admin/tasks").status_code == 401
        resp = httpx.get(f"{h.url}/admin/tasks", params={"since": "1h"}, headers=auth)
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert httpx.get(f"{h.url}/admin/tasks?since=soon", headers=auth).status_code == 400
    _check(report)
    assert report["serving"]["threshold"] == -0.5  # the static threshold of the harness
    assert _by_name(report)["intents"]["serving"]["status"] == "static"


def _use(monkeypatch: pytest.MonkeyPatch, url: str, db: Path) -> None:
    monkeypatch.delenv("DISTILL_CONFIG", raising=False)
    monkeypatch.setenv("DISTILL_SERVER_URL", url)
    monkeypatch.setenv("DISTILL_DB", str(db))
    monkeypatch.setenv("DISTILL_ADMIN_KEY", ADMIN)


def test_stats_by_task_from_the_server_and_from_the_file(
    make_proxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with make_proxy(admin_key=ADMIN, tasks=TABLES) as h:
        _traffic(h)
        _use(monkeypatch, h.url, tmp_path / "elsewhere.duckdb")  # only the server can answer
        assert main(["stats", "--by", "task", "--since", "1h"]) == 0
        out = capsys.readouterr().out
        assert f"from server {h.url}" in out
        assert "intents" in out and "66.7%" in out and "teacher only (excluded)" in out
        assert main(["stats", "--by", "task", "--json"]) == 0
        _check(json.loads(capsys.readouterr().out))
        db = h.settings.db
    _use(monkeypatch, f"http://127.0.0.1:{free_port()}", db)
    assert main(["stats", "--by", "task", "--since", "all", "--json"]) == 0
    from_file = _by_name(json.loads(capsys.readouterr().out))
    # The file knows the rows, not the server's overrides (a CLI without the config).
    assert from_file["intents"]["requests"] == 3 and from_file["intents"]["gold_n"] == 1
    assert from_file["private"]["excluded_requests"] == 1
    assert from_file["intents"]["serving"]["version"] == "base"
    assert main(["stats", "--by", "task", "--since", "all"]) == 0
    assert f"from file {db}" in capsys.readouterr().out


def test_requests_counter_has_a_task_label(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        client = h.client()
        client.chat.completions.create(
            model=MODEL, messages=messages(SYSTEM_A), extra_headers={"x-distill-task": "intents"}
        )
        client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi")
        samples = scrape(h.url)
    assert value(samples, "distill_requests_total", route="student", task="intents") == 1
    assert value(samples, "distill_requests_total", route="passthrough", task="none") == 1


def test_task_label_cardinality_is_bounded() -> None:
    metrics = Metrics()
    free = CostBreakdown(0.0, 0.0, 0.0, estimated=False)
    for i in range(MAX_TASK_LABELS + 10):
        for _ in range(2):
            metrics.observe({"route": "student", "reason": "confident", "task": f"t{i}"}, free)
    seen = {
        s.labels["task"]: s.value
        for family in metrics.registry.collect()
        if family.name == "distill_requests"
        for s in family.samples
        if s.name == "distill_requests_total"
    }
    assert len(seen) == MAX_TASK_LABELS + 1
    assert seen["t0"] == 2 and f"t{MAX_TASK_LABELS}" not in seen
    assert seen["other"] == 20  # the 10 tasks past the limit, 2 requests each
