"""The `RequestObserver` the app uses: prices each finished request and counts it."""

from __future__ import annotations

import logging
from typing import Any

from proxy.observability.collectors import (
    LeaderCollector,
    LogStoreCollector,
    RunsCollector,
    StudentCollector,
)
from proxy.observability.costs import CostModel
from proxy.observability.metrics import Metrics
from proxy.observability.prices import PriceBook, StudentPricing
from proxy.settings import Settings

log = logging.getLogger(__name__)

# What a malformed row can raise while being priced or counted; the row must still be logged.
_ROW_ERRORS = (ValueError, TypeError, KeyError, ArithmeticError)


class AccountingObserver:
    """Sets ``cost_usd`` and ``counterfactual_cost_usd`` on each row and updates metrics."""

    def __init__(self, costs: CostModel, metrics: Metrics) -> None:
        self.costs = costs
        self.metrics = metrics

    def on_finish(self, record: dict[str, Any]) -> None:
        try:
            breakdown = self.costs.apply(record)
            self.metrics.observe(record, breakdown)
        except _ROW_ERRORS:
            log.exception("could not account request %s", record.get("id"))

    def on_upstream_retry(self, upstream: str, kind: str) -> None:
        self.metrics.upstream_retry(upstream, kind)

    def on_upstream_error(self, upstream: str, kind: str) -> None:
        self.metrics.upstream_error(upstream, kind)


def cost_model(settings: Settings) -> CostModel:
    return CostModel(
        PriceBook.from_settings(settings),
        StudentPricing.from_settings(settings),
        teacher_model=settings.teacher_model,
    )


def build_accounting(state: Any, settings: Settings) -> AccountingObserver:
    """The observer for one app; its metrics (own registry) are kept on ``state.metrics``.

    Scrape-time collectors read ``state.writer`` / ``state.active`` / ``state.chat``
    lazily: the lifespan creates them after the observer.
    """
    metrics = Metrics()
    metrics.add_collector(LogStoreCollector(lambda: getattr(state, "writer", None)))
    metrics.add_collector(RunsCollector(lambda: getattr(state, "writer", None)))
    metrics.add_collector(LeaderCollector(lambda: getattr(state, "leader", None)))

    def threshold(version: Any) -> float | None:
        chat = getattr(state, "chat", None)
        return chat.threshold_for(version) if chat is not None else None

    metrics.add_collector(StudentCollector(lambda: getattr(state, "active", None), threshold))
    state.metrics = metrics
    return AccountingObserver(cost_model(settings), metrics)
