"""Aggregates soak outcomes into windows and totals; prints the table, writes the JSON."""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.soak.load import Outcome
from bench.soak.monitor import Sample


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def error_kinds(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Failures by kind; a deliberate mid-stream hang-up is not a failure."""
    kinds = collections.Counter(o.error for o in outcomes if o.error and o.kind != "disconnect")
    kinds.update(o.error for o in outcomes if o.kind == "disconnect" and o.error)
    return dict(kinds)


def windows(
    outcomes: Sequence[Outcome], samples: Sequence[Sample], t0: float, width: float
) -> list[dict[str, Any]]:
    buckets: dict[int, list[Outcome]] = collections.defaultdict(list)
    for o in outcomes:
        buckets[int((o.started - t0) // width)].append(o)
    rows = []
    for index in sorted(buckets):
        group = buckets[index]
        done = [o.latency_ms for o in group if o.complete and o.kind != "disconnect"]
        in_window = [s for s in samples if index * width <= s.at - t0 < (index + 1) * width]
        rows.append(
            {
                "t_start_s": index * width,
                "sent": len(group),
                "answered": len(done),
                "errors": sum(error_kinds(group).values()),
                "p50_ms": percentile(done, 0.5),
                "p99_ms": percentile(done, 0.99),
                "rss_mb": max((s.rss_mb for s in in_window), default=math.nan),
                "children_mb": max((s.children_mb for s in in_window), default=math.nan),
                "cpu_pct": max((s.cpu_percent for s in in_window), default=math.nan),
            }
        )
    return rows


def by_route_kind(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[float]] = collections.defaultdict(list)
    for o in outcomes:
        if o.complete and o.kind != "disconnect":
            groups[f"{o.route}/{o.kind}"].append(o.latency_ms)
    return {
        key: {"n": len(v), "p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)}
        for key, v in sorted(groups.items())
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.1f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    totals, log, rss = result["totals"], result["log"], result["rss"]
    parts = [
        f"soak: {result['config']['duration_s']:.0f}s at {result['config']['rate']}/s "
        f"(stream {result['config']['stream_fraction']:.0%}, unsure->teacher "
        f"{result['config']['unsure_fraction']:.0%}, disconnects "
        f"{result['config']['disconnect_fraction']:.0%})",
        table(
            result["windows"],
            [
                "t_start_s",
                "sent",
                "answered",
                "errors",
                "p50_ms",
                "p99_ms",
                "rss_mb",
                "children_mb",
                "cpu_pct",
            ],
        ),
        "",
        table(
            [{"route/kind": k, **v} for k, v in result["latency"].items()],
            ["route/kind", "n", "p50_ms", "p99_ms"],
        ),
        "",
        f"requests sent {totals['sent']}, answered completely {totals['answered']}, "
        f"deliberate disconnects {totals['disconnects']}, errors {totals['errors']} "
        f"{json.dumps(totals['errors_by_kind'])}",
        f"log rows for sent ids {log['rows_for_sent']} / requests the server saw "
        f"{log['server_saw']} -> {'EQUAL' if log['equal'] else 'MISMATCH'}; "
        f"spilled {log['spilled']}, dropped {log['dropped']}, rejected {log['rejected']}; "
        f"row statuses {json.dumps(log['statuses'])}, routes {json.dumps(log['routes'])}",
        f"server RSS (process alone) {rss['early_mb']:.1f} MB -> {rss['late_mb']:.1f} MB "
        f"({rss['growth_mb']:+.1f} MB, {rss['growth_pct']:+.1f}%)"
        f"{'  <-- GROWTH' if rss['flag'] else ''}; exit code {result['exit_code']}",
    ]
    if result.get("training"):
        parts.append(f"training: {json.dumps(result['training'])}")
    return "\n".join(parts)


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str, allow_nan=True) + "\n")
