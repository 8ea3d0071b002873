"""Machinery checks of a run: what must hold whatever the numbers (the --quick contract).

A smoke run passes when every request got an answer, at least one re-distillation run
ended with a verdict (promoted or rejected, not failed), the student was measured on the
validation split after it, and the proxy's log holds every request that was sent.
"""

from __future__ import annotations

from typing import Any

VERDICTS = frozenset({"promoted", "rejected"})


def _errors(records: list[dict[str, Any]], phase: str) -> list[str]:
    bad = [r for r in records if r.get("error") or r.get("status") != 200]
    if not bad:
        return []
    sample = bad[0].get("error") or f"status {bad[0].get('status')}"
    return [f"{len(bad)} of {len(records)} {phase} requests failed (e.g. {sample[:200]})"]


def _runs(segments: list[dict[str, Any]]) -> list[str]:
    runs = [s for s in segments if s.get("run")]
    if not runs:
        return ["no re-distillation run happened"]
    problems = []
    for seg in runs:
        status = str(seg["run"].get("status"))
        if status not in VERDICTS:
            reason = str(seg["run"].get("raw", {}).get("reason", ""))[:300]
            problems.append(f"run {seg['run'].get('id')} ended {status}: {reason}")
        if not seg.get("validation", {}).get("records"):
            problems.append(f"no validation measured after run {seg['run'].get('id')}")
    return problems


def _log(segments: list[dict[str, Any]]) -> list[str]:
    problems = []
    for seg in segments:
        logged = (seg.get("proxy_cost") or {}).get("requests")
        if logged is not None and logged < len(seg["records"]):
            problems.append(
                f"round {seg['round']}: the proxy logged {logged:.0f} of "
                f"{len(seg['records'])} requests"
            )
    return problems


def machinery_problems(raw: dict[str, Any]) -> list[str]:
    """Everything that says the loop itself is broken (empty: the machinery works)."""
    problems: list[str] = []
    if "teacher_baseline" not in raw:
        return ["the all-teacher baseline did not run"]
    problems += _errors(raw["teacher_baseline"]["records"], "all-teacher")
    if raw.get("static"):
        problems += _errors(raw["static"]["records"], "static-cascade")
    if not raw.get("base_validation"):
        return [*problems, "the learning proxy never measured the base student"]
    problems += _errors(raw["base_validation"]["records"], "validation")
    segments = raw.get("segments", [])
    for seg in segments:
        problems += _errors(seg["records"], f"round-{seg['round']}")
        problems += _errors(seg.get("validation", {}).get("records", []), "validation")
    return problems + _runs(segments) + _log(segments)
