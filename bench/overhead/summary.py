"""Aggregating overhead runs into medians, ratios against direct, and the printed table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

THROUGHPUT_GOAL = 10.0  # ours vs LiteLLM requests/s
ADDED_LATENCY_GOAL = 0.1  # ours / LiteLLM added latency

Run = dict[str, Any]  # {"mode", "concurrency", "target", "rps", "p50_ms", "p99_ms", "errors"}


def medians(runs: list[Run]) -> dict[tuple[str, int, str], dict[str, float]]:
    """Per (mode, concurrency, target): median rps/p50/p99 over the repeats, summed errors."""
    groups: dict[tuple[str, int, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run["mode"], int(run["concurrency"]), run["target"])].append(run)
    return {
        key: {
            "rps": statistics.median(r["rps"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "errors": sum(int(r["errors"]) for r in rs),
            "repeats": len(rs),
        }
        for key, rs in groups.items()
    }


def _safe(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def compare(cells: dict[tuple[str, int, str], dict[str, float]]) -> list[dict[str, Any]]:
    """Ratios per (mode, concurrency): throughput vs direct and latency added over direct."""
    out = []
    for mode, conc in sorted({(m, c) for m, c, _ in cells}):
        direct = cells.get((mode, conc, "direct"))
        ours = cells.get((mode, conc, "distill"))
        lite = cells.get((mode, conc, "litellm"))
        row: dict[str, Any] = {"mode": mode, "concurrency": conc}
        if direct and ours:
            row["distill_vs_direct_rps"] = _safe(ours["rps"], direct["rps"])
            row["distill_added_p50_ms"] = ours["p50_ms"] - direct["p50_ms"]
            row["distill_added_p99_ms"] = ours["p99_ms"] - direct["p99_ms"]
        if direct and lite:
            row["litellm_vs_direct_rps"] = _safe(lite["rps"], direct["rps"])
            row["litellm_added_p50_ms"] = lite["p50_ms"] - direct["p50_ms"]
            row["litellm_added_p99_ms"] = lite["p99_ms"] - direct["p99_ms"]
        if ours and lite and direct:
            row["distill_vs_litellm_rps"] = _safe(ours["rps"], lite["rps"])
            for q in ("p50", "p99"):
                ratio = _safe(row[f"distill_added_{q}_ms"], row[f"litellm_added_{q}_ms"])
                row[f"added_{q}_ours_over_litellm"] = ratio
            row["goal_met"] = (row["distill_vs_litellm_rps"] or 0) >= THROUGHPUT_GOAL and all(
                (row[f"added_{q}_ours_over_litellm"] or 0) <= ADDED_LATENCY_GOAL
                for q in ("p50", "p99")
            )
        out.append(row)
    return out


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(cells: dict[tuple[str, int, str], dict[str, float]], rows: list[dict[str, Any]]) -> str:
    """A compact plain-text table for the terminal."""
    lines = [
        f"{'mode':<10}{'conc':>5}  {'target':<8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}"
    ]
    for (mode, conc, target), c in sorted(cells.items()):
        lines.append(
            f"{mode:<10}{conc:>5}  {target:<8}{c['rps']:>10.0f}{c['p50_ms']:>9.2f}"
            f"{c['p99_ms']:>9.2f}{c['errors']:>8}"
        )
    lines += [
        "",
        f"{'mode':<10}{'conc':>5}  {'ours/direct':>11}{'litellm/direct':>15}"
        f"{'ours/litellm':>13}{'added p50 ours|lite':>22}{'added p99 ours|lite':>22}"
        f"{'goal':>6}",
    ]
    for r in rows:
        p50 = f"{_num(r.get('distill_added_p50_ms'))}|{_num(r.get('litellm_added_p50_ms'))}"
        p99 = f"{_num(r.get('distill_added_p99_ms'))}|{_num(r.get('litellm_added_p99_ms'))}"
        goal = {True: "met", False: "NOT", None: "-"}[r.get("goal_met")]
        lines.append(
            f"{r['mode']:<10}{r['concurrency']:>5}  {_num(r.get('distill_vs_direct_rps'), 3):>11}"
            f"{_num(r.get('litellm_vs_direct_rps'), 3):>15}"
            f"{_num(r.get('distill_vs_litellm_rps'), 1):>13}{p50:>22}{p99:>22}{goal:>6}"
        )
    return "\n".join(lines)
