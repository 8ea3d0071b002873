"""Scrape-time metrics: values that live elsewhere (the log writer, the active student,
the `runs` table) are read when Prometheus scrapes, not mirrored on every change."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from proxy.logstore.writer import LogStoreUnavailable
from proxy.observability import labels

log = logging.getLogger(__name__)

# Statuses of runs still in progress; every other status is an outcome and counted.
ACTIVE_RUN_STATUSES = frozenset(
    {"queued", "pending", "starting", "running", "training", "evaluating", "promoting"}
)

StateGetter = Callable[[], Any]


class LogStoreCollector(Collector):
    """`distill_log_queue_depth`, `distill_log_held_rows` and `distill_log_rows_total{outcome}`."""

    def __init__(self, writer: StateGetter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        writer = self._writer()
        if writer is None:
            return
        stats = writer.stats
        yield GaugeMetricFamily(
            "distill_log_queue_depth",
            "Log rows waiting in memory for the writer.",
            value=stats.queue_depth,
        )
        yield GaugeMetricFamily(
            "distill_log_held_rows",
            "Answered rows journaled while they wait for a background answer.",
            value=getattr(stats, "held", 0),
        )
        rows = CounterMetricFamily("distill_log_rows", "Log rows by outcome.", labels=["outcome"])
        # unjournaled: durable mode, rows the journal could not take (logged, not crash-safe)
        for outcome in ("written", "spilled", "replayed", "dropped", "rejected", "unjournaled"):
            rows.add_metric([outcome], getattr(stats, outcome, 0))
        yield rows
        yield CounterMetricFamily(
            "distill_log_write_errors", "Failed DuckDB writes.", value=stats.write_errors
        )


TASK_SLOT_LABELS = 32
"""Most tasks with per-task series (the same bound as the request counter's task label)."""


class StudentCollector(Collector):
    """`distill_student_version_info{version}` and the threshold in force (the main slot),
    and per task slot `distill_task_student_version_info{task,version}` and
    `distill_task_confidence_threshold{task}` (the first `TASK_SLOT_LABELS` tasks)."""

    def __init__(self, active: StateGetter, threshold: Callable[[Any], float | None]) -> None:
        self._active = active
        self._threshold = threshold
        self._tasks = labels.BoundedValues(limit=TASK_SLOT_LABELS, normalise=labels.task_name)

    def collect(self) -> Iterator[Metric]:
        active = self._active()
        if active is None:
            return
        current = active.current
        info = GaugeMetricFamily(
            "distill_student_version_info",
            "The student version serving now (value 1).",
            labels=["version"],
        )
        info.add_metric([str(current.version)[:64]], 1.0)
        yield info
        threshold = self._threshold(current)
        if threshold is not None and math.isfinite(threshold):
            yield GaugeMetricFamily(
                "distill_confidence_threshold", "Confidence threshold in force.", value=threshold
            )
        slots = active.tasks() if hasattr(active, "tasks") else {}
        if slots:
            yield from self._per_task(slots)

    def _per_task(self, slots: dict[str, Any]) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "distill_task_student_version_info",
            "The student version serving each task (value 1).",
            labels=["task", "version"],
        )
        gauge = GaugeMetricFamily(
            "distill_task_confidence_threshold",
            "Confidence threshold in force per task.",
            labels=["task"],
        )
        for name in sorted(slots):
            task = self._tasks(name)
            if task == labels.OTHER:  # past the bound: no series rather than a mixed one
                continue
            current = slots[name].current
            info.add_metric([task, str(current.version)[:64]], 1.0)
            threshold = self._threshold(current)
            if threshold is not None and math.isfinite(threshold):
                gauge.add_metric([task], threshold)
        yield info
        yield gauge


class RunsCollector(Collector):
    """`distill_runs_total{status}` (finished runs by outcome) and `distill_runs_active`."""

    def __init__(self, writer: StateGetter) -> None:
        self._writer = writer
        self._status = labels.BoundedValues(limit=16)

    def _counts(self) -> list[tuple[str, int]] | None:
        writer = self._writer()
        if writer is None:
            return None
        try:
            rows = writer.read(
                lambda cur: cur.execute(
                    "SELECT coalesce(status, 'unknown'), count(*) FROM runs GROUP BY 1"
                ).fetchall()
            )
        except (duckdb.Error, LogStoreUnavailable) as exc:
            log.debug("runs metrics unavailable: %s", exc)
            return None
        return [(str(status), int(n)) for status, n in rows]

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        if counts is None:
            return
        finished = CounterMetricFamily(
            "distill_runs", "Finished distillation runs by outcome.", labels=["status"]
        )
        active = 0
        by_status: dict[str, int] = {}
        for status, n in counts:
            if status in ACTIVE_RUN_STATUSES:
                active += n
                continue
            label = self._status(status)
            by_status[label] = by_status.get(label, 0) + n
        for label, n in sorted(by_status.items()):
            finished.add_metric([label], n)
        yield finished
        yield GaugeMetricFamily("distill_runs_active", "Runs queued or in progress.", value=active)


class LeaderCollector(Collector):
    """`distill_leader`: 1 on the replica that runs the training loop (always, on DuckDB)."""

    def __init__(self, leader: StateGetter) -> None:
        self._leader = leader

    def collect(self) -> Iterator[Metric]:
        leader = self._leader()
        if leader is None:
            return
        yield GaugeMetricFamily(
            "distill_leader",
            "1 when this replica leads the shared log's training loop, else 0.",
            value=1.0 if leader.is_leader else 0.0,
        )
