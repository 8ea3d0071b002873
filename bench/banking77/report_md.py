"""The markdown page of a Banking77 benchmark run (results.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.banking77.scorers import best_scorer, cascade_estimate


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _lat(segment: dict[str, Any] | None, route: str) -> str:
    lat = (segment or {}).get("latency_ms", {}).get(route)
    return "-" if not lat else f"{ms(lat['p50'])} / {ms(lat['p95'])}"


def _prices(summary: dict[str, Any]) -> str:
    p = summary["prices_usd_per_million_tokens"]
    return (
        f"teacher {p['teacher_in']} in / {p['teacher_out']} out, "
        f"student {p['student_in']} in / {p['student_out']} out"
    )


def _round_rows(rows: list[dict[str, Any]]) -> list[str]:
    head = (
        "| round | requests so far | segment requests | teacher calls | fallback rate | "
        "served acc. | student-only acc. (val) | cost vs all-teacher | "
        "student p50/p95 ms | teacher p50/p95 ms | run s (train+eval) | run |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        seg = r["segment"] or {}
        train = r["training_seconds"]
        lines.append(
            f"| {r['round']} | {r['requests_so_far']} | {seg.get('requests', '-')} | "
            f"{seg.get('teacher_calls', '-')} | {pct(seg.get('fallback_rate'))} | "
            f"{pct(seg.get('served_accuracy'))} | {pct(r['student_only_accuracy'])} | "
            f"{pct(seg.get('cost_ratio'))} | {_lat(seg, 'student')} | {_lat(seg, 'teacher')} | "
            f"{'-' if train is None else f'{train:.0f}'} | {r['run_status'] or '-'} |"
        )
    return lines


def _baseline_lines(b: dict[str, Any]) -> list[str]:
    teacher = b["all_teacher"]
    lines = [
        "| baseline | requests | accuracy | teacher calls | cost vs all-teacher |",
        "|---|---|---|---|---|",
        f"| all-teacher (replay teacher, same traffic) | {teacher['requests']} | "
        f"{pct(teacher['accuracy'])} | 100.0% | 100.0% |",
    ]
    base = b.get("base_student")
    if base:
        lines.append(
            f"| base student alone (validation, {base['validation_size']} queries) | - | "
            f"{pct(base['accuracy'])} | 0.0% | - |"
        )
    static = b.get("static_cascade")
    if static:
        lines.append(
            f"| static-threshold cascade, never retrained | {static['requests']} | "
            f"{pct(static['served_accuracy'])} | {pct(static['fallback_rate'])} | "
            f"{pct(static['cost_ratio'])} |"
        )
    return lines


def _reached(requests: int | None) -> str:
    return "never reached" if requests is None else f"reached after {requests} requests"


def _goal_lines(goals: dict[str, Any]) -> list[str]:
    s, c, t = goals["student_alone"], goals["cascade"], goals["time"]
    mark = {True: "met", False: "NOT met"}
    lines = [
        f"- Student alone, {s['target']}: **{mark[bool(s['met'])]}** "
        f"(by 1,500 teacher answers {pct(s.get('by_1500'))}, at the end {pct(s.get('final'))}, "
        f"{pct(s['ratio'])} of the teacher; {s.get('runs', '-')} runs).",
        f"- Cascade as served, calibration automatic, {c['target']}: "
        f"**{mark[bool(c['met'])]}** (served/all-teacher accuracy {pct(c['ratio'])}, teacher "
        f"calls {pct(c.get('teacher_call_fraction'))}, cost {pct(c.get('cost_ratio'))}).",
    ]
    if "serves_from" in goals:
        f = goals["serves_from"]
        lines.append(
            f"- {f['target']}: **{mark[bool(f['met'])]}** (first student-served request: "
            f"{f['first_student_request']})."
        )
    if "latency" in goals:
        lat = goals["latency"]
        lines.append(
            f"- Latency, {lat['target']}: **{mark[bool(lat['met'])]}** (idle p50 "
            f"{_ms(lat['idle_p50_ms'])}, p95 {_ms(lat['idle_p95_ms'])}; served p50 "
            f"{_ms(lat['served_p50_ms'])}; fallback p50 {_ms(lat['fallback_p50_ms'])} against "
            f"{_ms(lat['direct_teacher_p50_ms'])} direct)."
        )
    lines.append(f"- Time, {t['target']}: **{mark[bool(t['met'])]}**.")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _header(summary: dict[str, Any]) -> list[str]:
    machine = summary["machine"]
    settings = ", ".join(f"{k}={v}" for k, v in sorted(summary["settings"].items()))
    return [
        "# Banking77 distillation benchmark",
        "",
        f"Date {summary['date']}; {summary['minutes']:.1f} minutes on "
        f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, "
        f"{machine.get('memory_gib', '?')} GiB RAM).",
        "",
        f"Settings: {settings}.",
        "",
    ]


def _served_cascade_lines(c: dict[str, Any], teacher_accuracy: float | None) -> list[str]:
    """bench.banking77.served_cascade: the final student served with a hand-set threshold."""
    ratio = (c["served_accuracy"] / teacher_accuracy
             if c.get("served_accuracy") is not None and teacher_accuracy else None)  # fmt: skip
    chosen = (f"the top {c['validation_coverage']:.0%} of the final validation answers"
              if c.get("validation_coverage") else "set by hand")  # fmt: skip
    return [
        "## Served cascade with the final student, hand-set threshold",
        "",
        f"The final round's traffic (requests {c['first_request']} on, never trained on) "
        f"replayed through a copy of the learning proxy restarted in static mode, serving "
        f"the student when `{c['scorer']}` >= {c['threshold']:.4f} ({chosen}).",
        "",
        f"- Requests: {c['requests']} ({c['errors']} errors).",
        f"- Served accuracy: {pct(c['served_accuracy'])} ({pct(ratio)} of all-teacher).",
        f"- Teacher calls: {pct(c['teacher_call_fraction'])}.",
        f"- Cost vs all-teacher: {pct(c.get('cost_ratio_usage'))} from usage against the "
        f"all-teacher baseline's cost of the same queries ({pct(c['cost_ratio'])} by the "
        "proxy's own accounting, whose counterfactual then priced student answers at the "
        "pruned prompt's size; fixed since).",
        "",
    ]


def _estimate_lines(block: dict[str, Any], teacher_accuracy: float | None) -> list[str]:
    best = best_scorer(block)
    if best is None or teacher_accuracy is None:
        return []
    rows = cascade_estimate(block["scorers"][best], teacher_accuracy)
    cells = ", ".join(
        f"student {r['student_share']:.0%} -> {pct(r['served_accuracy'])}" for r in rows
    )
    return [f"Cascade estimate with `{best}` (served accuracy if the student answered its "
            f"most confident share, the teacher the rest): {cells}.", ""]  # fmt: skip


def _scorer_lines(scorers: dict[str, Any], teacher_accuracy: float | None = None) -> list[str]:
    """The offline scorer comparison (bench.banking77.scorers), one table per version."""
    lines = [
        "## Confidence scorers (same answers re-ranked)",
        "",
        "The student's validation answers (asked with logprobs) ranked by each scorer: its",
        "accuracy against gold on the most confident X%, and AUC, the mean over all X. A",
        "higher curve serves more traffic at the same accuracy.",
        "",
    ]
    for version, block in scorers.items():
        curves = block["scorers"]
        covs = list(next(iter(curves.values()))["accuracy_at"]) if curves else []
        lines += [
            f"Student after {version}: {block['n']} answers, {pct(block['accuracy'])} correct.",
            "",
            "| scorer | AUC | " + " | ".join(f"top {float(c):.0%}" for c in covs) + " |",
            "|---|---|" + "---|" * len(covs),
        ]
        for name, curve in curves.items():
            cells = [pct(curve["accuracy_at"].get(c)) for c in covs]
            lines.append(f"| {name} | {pct(curve['auc'])} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _estimate_lines(block, teacher_accuracy)
    return lines


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _calibration_lines(by_round: list[dict[str, Any]], evidence: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Calibration (automatic, no hand-set threshold)",
        "",
        "Per round, the serving version's calibration at the end of its traffic: status, the",
        "threshold, the coverage it estimated and its 95% lower bound on agreement with the",
        "teacher (fixed-sequence exact binomial tests), the best target its evidence supported,",
        "and the share the student actually served.",
        "",
        "| round | version | status | threshold | pairs (sources) | agreement lower bound | "
        "est. coverage | best supported (coverage) | served share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in by_round:
        c = r.get("during_segment") or {}
        best = c.get("best") or {}
        sources = ", ".join(f"{k} {v}" for k, v in (c.get("sources") or {}).items())
        lines.append(
            f"| {r['round']} | {c.get('version', '-')} | {c.get('status', '-')} | "
            f"{_num(c.get('threshold'), 4)} | {c.get('pairs', '-')} ({sources or '-'}) | "
            f"{_num(c.get('agreement_lower'))} | {pct(c.get('coverage_estimate'))} | "
            f"{_num(best.get('agreement_lower'))} ({pct(best.get('coverage'))}) | "
            f"{pct(r.get('served_share'))} |"
        )
    if evidence:
        lines += [
            "",
            "The calibration set, judged twice (each promoted candidate's answers): agreement",
            "with the teacher is what calibration sees; gold is the truth. Agreement is lower",
            "than the student's gold accuracy by the teacher's own errors on those queries.",
            "",
            "| run | n | agreement with teacher | student gold acc. | teacher gold acc. | "
            "both right |",
            "|---|---|---|---|---|---|",
            *[
                f"| {e['run']} | {e['n']} | {pct(e['agreement_with_teacher'])} | "
                f"{pct(e['student_gold_accuracy'])} | {pct(e['teacher_gold_accuracy'])} | "
                f"{pct(e['both_right'])} |"
                for e in evidence
            ],
        ]
    return [*lines, ""]


def _learning_lines(table: list[dict[str, Any]]) -> list[str]:
    if not table:
        return []
    lines = [
        "## What each re-distillation learned",
        "",
        "Rows trained on, epochs, minutes; then the student alone on validation: accuracy, the",
        "share of its most confident answers still >= 95% right (an oracle threshold), and its",
        "latency one request at a time, idle and beside the next training run.",
        "",
        "| round | run | train rows | calibration rows | epochs (warm) | train min | run min | "
        "student acc. | coverage at 95% | student p50/p95 ms idle | beside training |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        warm = " (warm)" if r.get("warm_started") else ""
        lines.append(
            f"| {r['round']} | {r['run']} ({r['status']}) | {r.get('train_rows', '-')} | "
            f"{r.get('calibration_rows', '-')} | {r.get('epochs', '-')}{warm} | "
            f"{_num(r.get('train_minutes'), 1)} | {_num(r.get('run_minutes'), 1)} | "
            f"{pct(r.get('student_accuracy'))} | {pct(r.get('coverage_at_95'))} | "
            f"{ms(r.get('student_p50_ms_idle'))} / {ms(r.get('student_p95_ms_idle'))} | "
            f"{ms(r.get('student_p50_ms_training'))} / {ms(r.get('student_p95_ms_training'))} |"
        )
    return [*lines, ""]


def _third_lines(third: dict[str, Any] | None, teacher_accuracy: float | None) -> list[str]:
    if not third:
        return []
    served = third.get("served_accuracy")
    ratio = served / teacher_accuracy if served is not None and teacher_accuracy else None
    return [
        "## Final third of the traffic",
        "",
        f"- Requests {third['first_request']} on ({third['requests']} requests).",
        f"- Teacher calls: {pct(third['fallback_rate'])}.",
        f"- Served accuracy: {pct(third['served_accuracy'])} ({pct(ratio)} of all-teacher).",
        f"- Cost vs all-teacher: {pct(third['cost_ratio'])} (usage at the prices below, plus "
        "each segment's shadow and retry spend pro rata).",
        f"- Student route latency p50/p95: {_lat(third, 'student')} ms; teacher "
        f"{_lat(third, 'teacher')} ms.",
        "",
    ]


def render_markdown(summary: dict[str, Any], rows: list[dict[str, Any]], plots: list[Path]) -> str:
    """The whole results page."""
    lines = [
        *_header(summary),
        "## Final round",
        "",
        f"- Requests: {summary['requests']} (final round {summary['final_round']}: "
        f"{summary['final_round_requests']} requests).",
        f"- Teacher accuracy (all-teacher baseline): {pct(summary['teacher_accuracy'])}.",
        f"- Student alone on validation: {pct(summary['student_only_accuracy'])}.",
        f"- Served accuracy: {pct(summary['served_accuracy'])} final round, "
        f"{pct(summary['served_accuracy_overall'])} overall.",
        f"- Teacher calls: {pct(summary['teacher_call_fraction'])} final round, "
        f"{pct(summary['teacher_call_fraction_overall'])} overall.",
        f"- Cost vs all-teacher: {pct(summary['cost_ratio'])} final round, "
        f"{pct(summary['cost_ratio_overall'])} overall "
        f"({usd(summary['cost_usd_overall'])} vs {usd(summary['all_teacher_cost_usd_overall'])}).",
        "",
        f"Prices (USD per 1M tokens): {_prices(summary)}. Cost ratios use "
        f"{summary.get('cost_source', 'the client-side measurement')}.",
        "",
        *_third_lines(summary.get("final_third"), summary["teacher_accuracy"]),
        "## Goals",
        "",
        *_goal_lines(summary["goals"]),
        "",
        *_calibration_lines(
            summary.get("calibration_by_round") or [], summary.get("calibration_evidence") or []
        ),
        *_learning_lines(summary.get("learning") or []),
        "## Rounds",
        "",
        "Each round is the traffic served since the previous re-distillation, then the run it",
        "triggered and the student's accuracy alone on the validation split afterwards.",
        "",
        *_round_rows(rows),
        "",
        "## Baselines (same run)",
        "",
        *_baseline_lines(summary["baselines"]),
        "",
    ]
    if summary.get("served_cascade"):
        lines += _served_cascade_lines(summary["served_cascade"], summary["teacher_accuracy"])
    if summary.get("scorers"):
        lines += _scorer_lines(summary["scorers"], summary.get("teacher_accuracy"))
    if summary.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in summary["notes"]], ""]
    if plots:
        lines += ["## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots], ""]
    return "\n".join(lines)
