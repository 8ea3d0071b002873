"""Prometheus metrics of one app, in their own `CollectorRegistry`.

Never the process-wide default registry: tests run several apps in one process,
and each must count only its own traffic. Names and labels: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

from proxy.observability import labels
from proxy.observability.costs import CostBreakdown

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)
# Tasks that keep their own `task` label on distill_requests_total; later ones count as
# `other`. Each task multiplies the counter's route x reason series (about ten in practice),
# so 32 tasks stay a few hundred series per replica, while a client deriving a task per
# user (a prompt with an unmasked name in it) cannot grow the scrape without bound. The
# full per-task numbers are in GET /admin/tasks, which has no such limit.
MAX_TASK_LABELS = 32
NO_TASK_LABEL = "none"  # rows without a task: pass-through calls, refusals of other paths
# One set for every scorer: log-probabilities and negated entropies are <= 0, probabilities
# lie in [0, 1]; the `scorer` label keeps them apart.
CONFIDENCE_BUCKETS = (
    -5.0,
    -3.0,
    -2.0,
    -1.5,
    -1.0,
    -0.75,
    -0.5,
    -0.4,
    -0.3,
    -0.2,
    -0.1,
    -0.05,
    -0.01,
    0.0,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    1.0,
)


class Metrics:
    """The request-path metrics; scrape-time ones are added as collectors."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "distill_requests",
            "Requests finished, by route, reason and task.",
            ["route", "reason", "task"],
            registry=r,
        )
        self.fallbacks = Counter(
            "distill_fallback",
            "Requests answered by the teacher, by reason.",
            ["reason"],
            registry=r,
        )
        self.shadow = Counter(
            "distill_shadow", "Student-served requests also answered by the teacher.", registry=r
        )
        self.degraded = Counter(
            "distill_degraded", "Requests served degraded, by kind.", ["kind"], registry=r
        )
        self.responses = Counter(
            "distill_responses", "Responses by HTTP status class.", ["code"], registry=r
        )
        self.confidence = Histogram(
            "distill_confidence",
            "Confidence score of the student's answers.",
            ["scorer"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "distill_request_latency_seconds",
            "Total request latency, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "distill_ttfb_seconds",
            "Time to first byte of streamed responses, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._init_upstream_and_cost(r)
        self._kinds = labels.BoundedValues(limit=24)
        self._tasks = labels.BoundedValues(limit=MAX_TASK_LABELS, normalise=labels.task_name)

    def _init_upstream_and_cost(self, r: CollectorRegistry) -> None:
        self.upstream_errors = Counter(
            "distill_upstream_errors", "Failed upstream calls.", ["upstream", "kind"], registry=r
        )
        self.upstream_retries = Counter(
            "distill_upstream_retries", "Retried upstream calls.", ["upstream", "kind"], registry=r
        )
        self.tokens = Counter(
            "distill_tokens",
            "Tokens processed, by upstream and kind.",
            ["upstream", "kind"],
            registry=r,
        )
        self.cost = Counter("distill_cost_usd", "Actual spend in USD.", registry=r)
        self.counterfactual = Counter(
            "distill_counterfactual_cost_usd",
            "What teacher-only would have cost, USD.",
            registry=r,
        )
        self.savings = Gauge(
            "distill_savings_usd_total",
            "Counterfactual minus actual cost since start, USD (a gauge: a fallback pays both "
            "upstreams, so it can go down).",
            registry=r,
        )
        self.estimated = Counter(
            "distill_cost_estimated_requests",
            "Requests whose cost used estimated token counts (usage missing).",
            registry=r,
        )

    # --- request path -------------------------------------------------------------------
    def observe(self, record: Mapping[str, Any], costs: CostBreakdown) -> None:
        route = labels.route(record.get("route"))
        reason = labels.reason(record.get("reason"))
        task = record.get("task")
        self.requests.labels(route, reason, self._tasks(task) if task else NO_TASK_LABEL).inc()
        if route == "teacher":
            self.fallbacks.labels(reason).inc()
        if record.get("shadow"):
            self.shadow.inc()
        if record.get("degraded"):
            self.degraded.labels(labels.one_of(record.get("degraded"), labels.DEGRADED)).inc()
        self.responses.labels(labels.status_class(record.get("status_code"))).inc()
        self._observe_timing(record, route)
        self._observe_tokens(record)
        self.cost.inc(max(costs.actual_usd, 0.0))
        self.counterfactual.inc(max(costs.counterfactual_usd, 0.0))
        self.savings.inc(costs.savings_usd)
        if costs.estimated:
            self.estimated.inc()

    def _observe_timing(self, record: Mapping[str, Any], route: str) -> None:
        confidence = record.get("confidence")
        if isinstance(confidence, int | float) and math.isfinite(confidence):
            scorer = labels.one_of(record.get("scorer"), labels.SCORERS)
            self.confidence.labels(scorer).observe(float(confidence))
        total = record.get("total_latency_ms")
        if isinstance(total, int | float):
            self.latency.labels(route).observe(total / 1000.0)
        ttfb = record.get("ttfb_ms")
        if isinstance(ttfb, int | float):
            self.ttfb.labels(route).observe(ttfb / 1000.0)

    def _observe_tokens(self, record: Mapping[str, Any]) -> None:
        for upstream in ("student", "teacher"):
            for kind in ("prompt", "completion"):
                value = record.get(f"{upstream}_{kind}_tokens")
                if isinstance(value, int) and value > 0:
                    self.tokens.labels(upstream, kind).inc(value)

    def upstream_error(self, upstream: str, kind: str) -> None:
        self.upstream_errors.labels(
            labels.one_of(upstream, labels.UPSTREAMS), self._kinds(kind)
        ).inc()

    def upstream_retry(self, upstream: str, kind: str) -> None:
        self.upstream_retries.labels(
            labels.one_of(upstream, labels.UPSTREAMS), self._kinds(kind)
        ).inc()

    # --- exposition ---------------------------------------------------------------------
    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        """The text exposition; collectors may query DuckDB, so call it off the event loop."""
        return generate_latest(self.registry)
