"""The final student as a served cascade with a hand-set threshold, on the last traffic.

In the learning run the calibration gate decides when the student may serve. Its target is
agreement with the teacher (itself ~92% right here), judged on a Wilson lower bound, and a
round's 1,000 requests take under a minute on the benchmark's compressed clock, so the gate
may never collect enough pairs to open. This measures what a user gets by setting the
threshold by hand instead (static mode, `DISTILL_CONFIDENCE_THRESHOLD`): a copy of the
learning proxy's state (DuckDB log and promoted adapter) is restarted with that threshold
and the final round's traffic (never trained on) is replayed through it.

    python -m bench.banking77.served_cascade WORK_DIR [--coverage 0.5 | --threshold T]

The threshold for `--coverage` is read off the final validation answers (held out, never
traffic), so the traffic it is measured on played no part in choosing it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

from bench.banking77.data import load_categories, load_split, traffic_order
from bench.banking77.driver import Driver, DriverConfig
from bench.banking77.report import write_report
from bench.banking77.stack import TeacherSpec, start_proxy, start_teacher, stop_server
from bench.common.console import say
from bench.harness.admin import AdminClient
from bench.harness.rounds import proxy_costs
from bench.harness.settings import BenchSettings, proxy_env
from bench.harness.stack import ensure_base_model
from bench.harness.stats import (
    Prices,
    accuracy,
    all_teacher_cost,
    baseline_costs,
    student_cost,
    teacher_cost_from_usage,
)


def scorer_of(raw: dict[str, Any]) -> str:
    """In static mode a hand-set threshold is on the configured scorer's scale (calibration
    mode alone switches closed-set students to ``sequence_prob``)."""
    return str(raw["settings"].get("scorer") or "mean_logprob")


def threshold_for_coverage(raw: dict[str, Any], coverage: float) -> float:
    """The confidence of the last validation answer inside the top `coverage` share."""
    rounds = [s for s in raw["segments"] if s.get("validation")]
    records = rounds[-1]["validation"]["records"]
    scorer = scorer_of(raw)
    scores = sorted((r["scores"][scorer] for r in records if r.get("scores")), reverse=True)
    if not scores:
        raise SystemExit("the final validation has no scores (a run before logprobs were asked)")
    return float(scores[max(0, round(coverage * len(scores)) - 1)])


def usage_cost_ratio(raw: dict[str, Any], records: list[dict[str, Any]]) -> float | None:
    """Actual spend from the usage the client saw (teacher calls at teacher prices, every
    request's student call at student prices) over what the all-teacher baseline paid for
    the same queries. Independent of the proxy's own counterfactual estimate."""
    p = raw["prices"]
    prices = Prices(p["teacher_in"], p["teacher_out"], p["student_in"], p["student_out"])
    baseline = baseline_costs(raw["teacher_baseline"]["records"], prices)
    all_teacher = all_teacher_cost(records, baseline, prices)
    actual = teacher_cost_from_usage(records, prices) + student_cost(records, prices)
    return actual / all_teacher if all_teacher else None


def _settings(raw: dict[str, Any], work_dir: Path, threshold: float) -> BenchSettings:
    s = raw["settings"]
    return BenchSettings(
        threshold=threshold,
        target_agreement=None,
        teacher_accuracy=s["teacher_accuracy"],
        teacher_latency_ms=s["teacher_latency_ms"],
        price_in=s["price_in"],
        price_out=s["price_out"],
        student_price=s["student_price"],
        concurrency=s["concurrency"],
        stream_fraction=s["stream_fraction"],
        seed=s["seed"],
        scorer=scorer_of(raw),
        requests=s["requests"],
        work_dir=work_dir,
    )


async def replay(raw: dict[str, Any], work_dir: Path, threshold: float) -> dict[str, Any]:
    s = _settings(raw, work_dir, threshold)
    state = work_dir / "cascade"
    shutil.rmtree(state, ignore_errors=True)
    shutil.copytree(work_dir / "learning", state, ignore=shutil.ignore_patterns("spill"))
    start = sum(len(seg["records"]) for seg in raw["segments"][:-1])
    traffic = list(enumerate(traffic_order(load_split(seed=s.seed).train, s.seed)[: s.requests]))
    items = traffic[start:]
    spec = TeacherSpec(s.teacher_accuracy, s.teacher_latency_ms, s.price_in, s.price_out)
    logs = work_dir / "logs"
    teacher = start_teacher(spec, logs)
    admin_key = secrets.token_urlsafe(24)
    env = proxy_env(s, teacher.v1, spec.api_key, admin_key, "cascade", ensure_base_model())
    proxy = start_proxy("cascade-proxy", env, logs, s.ready_timeout)
    driver = Driver(
        DriverConfig(proxy.v1, "bench-client", concurrency=s.concurrency,
                     stream_fraction=s.stream_fraction, seed=s.seed),
        load_categories(),
    )  # fmt: skip
    admin = AdminClient(proxy.root, admin_key)
    try:
        before = await proxy_costs(admin)
        records = await driver.run(items, "cascade", len(raw["segments"]))
        logged = int(before["requests"]) + len(records) if before else None
        after = await proxy_costs(admin, logged)
    finally:
        await driver.aclose()
        await admin.aclose()
        stop_server(proxy)
        stop_server(teacher)
    costs = {k: after[k] - before[k] for k in after} if after and before else None
    teacher_calls = sum(r.route == "teacher" for r in records)
    result = {
        "threshold": threshold,
        "scorer": scorer_of(raw),
        "first_request": start,
        "requests": len(records),
        "served_accuracy": accuracy([r.to_dict() for r in records]),
        "teacher_call_fraction": teacher_calls / max(1, len(records)),
        "cost_ratio": costs["cost_usd"] / costs["counterfactual_cost_usd"]
        if costs and costs["counterfactual_cost_usd"]
        else None,
        "errors": sum(r.status != 200 for r in records),
        "records": [r.to_dict() for r in records],
    }
    say(f"served cascade at {scorer_of(raw)} >= {threshold:.4f}: {len(records)} requests, "
        f"{result['teacher_call_fraction']:.3f} to the teacher, served accuracy "
        f"{result['served_accuracy']}, cost ratio {result['cost_ratio']}")  # fmt: skip
    return result


def refresh_usage_ratio(raw: dict[str, Any]) -> None:
    cascade = raw["served_cascade"]
    cascade["cost_ratio_usage"] = usage_cost_ratio(raw, cascade["records"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.banking77.served_cascade",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("work_dir", type=Path, help="bench/banking77/work/<run> of a finished run")
    p.add_argument(
        "--coverage",
        type=float,
        default=0.5,
        help="student share on the final validation answers that sets the threshold",
    )
    p.add_argument("--threshold", type=float, help="explicit sequence_prob threshold")
    p.add_argument("--out", type=Path, help="rewrite the report here (default: none)")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="recompute the report from a finished replay, no new traffic",
    )
    args = p.parse_args(argv)
    raw_path = args.work_dir / "raw.json"
    raw = json.loads(raw_path.read_text())
    if args.report_only:
        refresh_usage_ratio(raw)
        raw_path.write_text(json.dumps(raw, default=str))
        if args.out is not None:
            write_report(raw, args.out)
        return
    threshold = args.threshold
    if threshold is None:
        threshold = threshold_for_coverage(raw, args.coverage)
    raw["served_cascade"] = asyncio.run(replay(raw, args.work_dir, threshold))
    raw["served_cascade"]["validation_coverage"] = None if args.threshold else args.coverage
    refresh_usage_ratio(raw)
    raw_path.write_text(json.dumps(raw, default=str))
    if args.out is not None:
        write_report(raw, args.out)


if __name__ == "__main__":
    main()
