"""/metrics through a real server: present, moving after traffic, costs logged per row."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.observability import labels
from proxy.observability.metrics import Metrics
from tests.observability.traffic import MODEL, QUESTION, drive

# gpt-4o-mini: $0.15 in / $0.60 out per 1M; student $0.05 per 1M. The fakes report 20 prompt
# tokens; "Paris" is 1 completion token, "The capital is Paris." 4.
STUDENT_COST = 21 * 0.05e-6
STUDENT_COUNTERFACTUAL = 20 * 0.15e-6 + 1 * 0.6e-6
TEACHER_COST = 20 * 0.15e-6 + 4 * 0.6e-6
ROOT = Path(__file__).resolve().parents[2]


def scrape(url: str, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", **kwargs)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **lbls: str) -> float:
    """The sum over the series of `name` that carry these label values (any others)."""
    wanted = set(lbls.items())
    return sum(v for (n, labels_), v in samples.items() if n == name and wanted <= set(labels_))


def test_metrics_move_with_traffic(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        before = scrape(h.url)
        assert value(before, "distill_requests_total", route="student", reason="confident") == 0
        assert value(before, "distill_student_version_info", version="base") == 1
        drive(h)
        after = scrape(h.url)
        _documented_metrics_exist(h.url)
    assert value(after, "distill_requests_total", route="student", reason="confident") == 2
    assert value(after, "distill_requests_total", route="teacher", reason="low_confidence") == 1
    assert value(after, "distill_requests_total", route="teacher", reason="forced") == 2
    assert value(after, "distill_fallback_total", reason="low_confidence") == 1
    assert value(after, "distill_confidence_count", scorer="mean_logprob") == 3
    assert value(after, "distill_request_latency_seconds_count", route="student") == 2
    assert value(after, "distill_ttfb_seconds_count", route="student") == 1  # the streamed one
    assert value(after, "distill_ttfb_seconds_count", route="teacher") == 1
    assert (
        value(after, "distill_upstream_retries_total", upstream="teacher", kind="retryable_status")
        == 1
    )
    # 2 student answers, 1 rejected student answer ("Maybe Lyon": 22 tokens), 3 teacher calls.
    cost = 2 * STUDENT_COST + 22 * 0.05e-6 + 3 * TEACHER_COST
    assert value(after, "distill_cost_usd_total") == pytest.approx(cost)
    counterfactual = 2 * STUDENT_COUNTERFACTUAL + 3 * TEACHER_COST
    assert value(after, "distill_counterfactual_cost_usd_total") == pytest.approx(counterfactual)
    assert value(after, "distill_savings_usd_total") == pytest.approx(counterfactual - cost)
    assert value(after, "distill_log_rows_total", outcome="written") == 5
    assert value(after, "distill_log_queue_depth") == 0
    assert value(after, "distill_confidence_threshold") == -0.5


def _documented_metrics_exist(url: str) -> None:
    """Every metric the docs and the Grafana dashboard name is really exposed."""
    exposed = set()
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        exposed |= {family.name, f"{family.name}_total"}
    # Runs metrics appear once the runs table is readable; they are checked separately.
    exposed |= {"distill_runs_total", "distill_runs_active"}
    for doc in (
        ROOT / "docs" / "metrics.md",
        ROOT / "deploy" / "grafana" / "distill-dashboard.json",
    ):
        names = set(re.findall(r"\b(distill_[a-z_]+?)(?:_bucket|_count|_sum)?\b", doc.read_text()))
        missing = {n for n in names if n not in exposed and not n.endswith("_")}
        assert not missing, f"{doc.name} names metrics that are not exposed: {missing}"


def test_streamed_requests_are_priced_not_free(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        drive(h)
        rows = h.rows("stream")
    assert {(r["route"], r["reason"]) for r in rows} == {
        ("student", "confident"),
        ("teacher", "forced"),
    }
    for r in rows:
        assert r["cost_usd"] > 0 and r["counterfactual_cost_usd"] > 0
        expected = STUDENT_COST if r["route"] == "student" else TEACHER_COST
        assert r["cost_usd"] == pytest.approx(expected)


def test_each_app_counts_only_its_own_traffic(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as first:
        first.client().chat.completions.create(model=MODEL, messages=QUESTION)
        assert (
            value(scrape(first.url), "distill_requests_total", route="student", reason="confident")
            == 1
        )
    with make_proxy() as second:
        assert (
            value(scrape(second.url), "distill_requests_total", route="student", reason="confident")
            == 0
        )


def test_runs_by_outcome_come_from_the_runs_table(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        writer = h.app.state.writer
        for i, status in enumerate(["promoted", "rejected", "rejected", "running"]):
            writer.execute(
                "INSERT INTO runs (id, created_at, status, trigger) "
                "VALUES (?, now()::TIMESTAMP, ?, 'manual')",
                [f"r{i}", status],
            ).result()
        samples = scrape(h.url)
    assert value(samples, "distill_runs_total", status="promoted") == 1
    assert value(samples, "distill_runs_total", status="rejected") == 2
    assert value(samples, "distill_runs_active") == 1


def test_metrics_can_require_the_admin_key(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(metrics_public=False, admin_key="adm-secret") as h:
        assert httpx.get(f"{h.url}/metrics").status_code == 401
        scrape(h.url, headers={"authorization": "Bearer adm-secret"})


def test_labels_stay_bounded() -> None:
    assert labels.reason("unsupported:tools") == "unsupported:tools"
    assert labels.reason("unsupported:req_123") == "unsupported:other"
    assert labels.reason("what the client typed") == "other"
    assert labels.route("req_abc") == "other"
    bounded = labels.BoundedValues(limit=3)
    seen = {bounded(f"Kind{i}") for i in range(50)}
    assert seen == {"kind0", "kind1", "kind2", "other"}
    metrics = Metrics()
    for i in range(100):
        metrics.upstream_error("teacher", f"Error{i}")
    text = metrics.render().decode()
    assert text.count("distill_upstream_errors_total{") <= 25
