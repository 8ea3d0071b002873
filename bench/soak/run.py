"""Soak: sustained mixed traffic through a real `distill serve` for a fixed time at a
fixed rate, loopback only, then a report.

    python -m bench.soak.run --duration 120 --rate 20 [--with-training]

Traffic: streaming and not, both routes (the fake student is unsure for a share of the
prompts, so the teacher answers those), some clients hanging up mid-stream. Reports:
requests sent/answered, errors by kind, p50/p99 latency per time window and per route,
server RSS and CPU over time (growth flagged), log rows vs requests (after a SIGTERM
drain), rows spilled/dropped. With --with-training a training run (the loop's fake
trainer, tests/loop/fake_trainer.py) and its promotion happen during the load.
Writes bench/soak/results/latest.json; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx

from bench.harness.stack import Server
from bench.soak import report
from bench.soak.load import Outcome, send
from bench.soak.monitor import ProcessMonitor, rss_growth
from bench.soak.stack import ProxyConfig, signal_proxy, start_distill, start_fake, stop_all

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
FAKE_TRAINER = Path(__file__).resolve().parents[2] / "tests" / "loop" / "fake_trainer.py"
CLIENT_KEY = "sk-soak-client-0001"
ADMIN_KEY = "sk-soak-admin-0001"
TEACHER_KEY = "sk-soak-teacher-0001"
BASE_WORDS = "Lyon is a city in France I think"  # the untrained student: wrong, per the teacher
RSS_GROWTH_FLAG_PCT = 10.0
RSS_GROWTH_FLAG_MB = 20.0


@dataclass
class SoakConfig:
    duration_s: float
    rate: float
    stream_fraction: float
    unsure_fraction: float
    disconnect_fraction: float
    window_s: float
    student_latency_ms: float
    teacher_latency_ms: float
    max_inflight: int
    with_training: bool
    redact: bool
    seed: int
    out: Path
    keep: bool


def parse_args(argv: list[str] | None) -> SoakConfig:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second (open loop)")
    p.add_argument("--stream-fraction", type=float, default=0.4)
    p.add_argument("--unsure-fraction", type=float, default=0.3, help="teacher-routed share")
    p.add_argument("--disconnect-fraction", type=float, default=0.05)
    p.add_argument("--window", type=float, default=None, help="report window (s)")
    p.add_argument("--student-latency-ms", type=float, default=30.0)
    p.add_argument("--teacher-latency-ms", type=float, default=150.0)
    p.add_argument("--max-inflight", type=int, default=1000)
    p.add_argument("--with-training", action="store_true", help="a run + promotion mid-soak")
    p.add_argument("--redact", action="store_true", help="serve with DISTILL_REDACT_PII=1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args(argv)
    window = a.window or max(5.0, a.duration / 12)
    return SoakConfig(
        a.duration,
        a.rate,
        a.stream_fraction,
        a.unsure_fraction,
        a.disconnect_fraction,
        window,
        a.student_latency_ms,
        a.teacher_latency_ms,
        a.max_inflight,
        a.with_training,
        a.redact,
        a.seed,
        a.out,
        a.keep,
    )


def request_plan(i: int, cfg: SoakConfig, rng: random.Random) -> tuple[str, str]:
    """(kind, prompt) of request i."""
    roll = rng.random()
    if roll < cfg.disconnect_fraction:
        kind = "disconnect"
    elif roll < cfg.disconnect_fraction + cfg.stream_fraction:
        kind = "stream"
    else:
        kind = "plain"
    prompt = f"Request {i}: where is the Eiffel tower?"
    if kind == "disconnect":
        # A relayed teacher stream that takes ~2 s, so the hang-up really is mid-stream
        # (a student answer is scored in full first and leaves in one burst).
        prompt += " #student=unsure #teacher=words:40 #teacher=drip:50"
    elif rng.random() < cfg.unsure_fraction:
        prompt += " #student=unsure"
    return kind, prompt + " padding" * rng.randint(0, 40)


async def drive(cfg: SoakConfig, proxy: Server) -> tuple[list[Outcome], float, int, Any]:
    """Open-loop load at the fixed rate; returns outcomes, t0, skipped, training result."""
    rng = random.Random(cfg.seed)
    url = f"{proxy.v1}/chat/completions"
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    limits = httpx.Limits(max_connections=cfg.max_inflight, max_keepalive_connections=256)
    tasks: list[asyncio.Task[Outcome]] = []
    skipped = 0
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        t0 = time.monotonic()
        trainer = (
            asyncio.ensure_future(train_during(proxy, cfg.duration_s / 4))
            if cfg.with_training
            else None
        )
        total = int(cfg.duration_s * cfg.rate)
        for i in range(total):
            delay = t0 + i / cfg.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if sum(not t.done() for t in tasks[-cfg.max_inflight :]) >= cfg.max_inflight:
                skipped += 1
                continue
            kind, prompt = request_plan(i, cfg, rng)
            tasks.append(
                asyncio.ensure_future(send(client, url, f"soak-{i}", kind, prompt, headers))
            )
        outcomes = list(await asyncio.gather(*tasks))
        training = await trainer if trainer is not None else None
    return outcomes, t0, skipped, training


async def train_during(proxy: Server, after_s: float) -> dict[str, Any]:
    """Triggers POST /admin/runs after `after_s`, follows the run to its end."""
    await asyncio.sleep(after_s)
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(timeout=30, headers=admin) as client:
        started = time.monotonic()
        response = await client.post(f"{proxy.root}/admin/runs", json={})
        if response.status_code != 202:
            return {
                "triggered": False,
                "status_code": response.status_code,
                "body": response.text[:300],
            }
        run_id = response.json()["id"]
        run: dict[str, Any] = {}
        while time.monotonic() - started < 300:
            run = (await client.get(f"{proxy.root}/admin/runs/{run_id}")).json()
            if run.get("status") not in ("running", "evaluating"):
                break
            await asyncio.sleep(1.0)
        current = (await client.get(f"{proxy.root}/admin/students")).json().get("current") or {}
    return {
        "triggered": True,
        "run_id": run_id,
        "status": run.get("status"),
        "reason": run.get("reason"),
        "seconds": round(time.monotonic() - started, 1),
        "serving_version_after": current.get("version"),
    }


def admin_stats(proxy: Server) -> dict[str, Any]:
    response = httpx.get(
        f"{proxy.root}/admin/stats", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    response.raise_for_status()
    return dict(response.json().get("log") or {})


def logged(db: Path, sent: set[str]) -> dict[str, Any]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        rows = conn.execute("SELECT id, status_code, route FROM requests").fetchall()
    finally:
        conn.close()
    mine = [r for r in rows if r[0] in sent]
    statuses: dict[str, int] = {}
    routes: dict[str, int] = {}
    for _, status, route in mine:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        routes[str(route)] = routes.get(str(route), 0) + 1
    return {
        "ids": {r[0] for r in mine},
        "statuses": statuses,
        "routes": routes,
        "total_rows": len(rows),
    }


def start_stack(cfg: SoakConfig, work: Path) -> tuple[Server, Server, Server, ProxyConfig]:
    logs = work / "logs"
    student = start_fake(
        "student",
        logs,
        latency_ms=cfg.student_latency_ms,
        base_words=BASE_WORDS if cfg.with_training else None,
    )
    teacher = start_fake("teacher", logs, api_key=TEACHER_KEY, latency_ms=cfg.teacher_latency_ms)
    extra = {
        "DISTILL_API_KEYS": CLIENT_KEY,
        "DISTILL_ADMIN_KEY": ADMIN_KEY,
        "DISTILL_SHUTDOWN_GRACE": "30",
    }
    if cfg.with_training:
        extra |= {
            "DISTILL_TRAINER_COMMAND": f"{sys.executable} {FAKE_TRAINER} --sleep 5",
            "DISTILL_TRAIN_MIN_ROWS": "20",
        }
    if cfg.redact:
        extra["DISTILL_REDACT_PII"] = "1"
    config = ProxyConfig(
        student, teacher, TEACHER_KEY, work / "distill.duckdb", work / "data", extra
    )
    try:
        proxy = start_distill(config, logs)
    except BaseException:
        stop_all(student, teacher)
        raise
    return student, teacher, proxy, config


def summarise(cfg: SoakConfig, run: dict[str, Any]) -> dict[str, Any]:
    outcomes: list[Outcome] = run["outcomes"]
    sent = {o.request_id for o in outcomes}
    saw = {o.request_id for o in outcomes if o.status is not None}
    rows = run["rows"]
    missing, extra = saw - rows["ids"], rows["ids"] - saw
    errors = report.error_kinds(outcomes)
    stats = run["stats"]
    growth = rss_growth(run["samples"])
    flag = growth["growth_pct"] > RSS_GROWTH_FLAG_PCT and growth["growth_mb"] > RSS_GROWTH_FLAG_MB
    return {
        "config": {**asdict(cfg), "out": str(cfg.out)},
        "windows": report.windows(outcomes, run["samples"], run["t0"], cfg.window_s),
        "latency": report.by_route_kind(outcomes),
        "totals": {
            "sent": len(sent),
            "skipped_client_side": run["skipped"],
            "answered": sum(o.complete for o in outcomes if o.kind != "disconnect"),
            "disconnects": sum(o.kind == "disconnect" for o in outcomes),
            "errors": sum(errors.values()),
            "errors_by_kind": errors,
        },
        "log": {
            "rows_for_sent": len(rows["ids"]),
            "server_saw": len(saw),
            "missing": sorted(missing)[:20],
            "logged_but_client_failed": sorted(extra)[:20],
            "equal": not missing and not extra,
            "statuses": rows["statuses"],
            "routes": rows["routes"],
            "spilled": stats.get("spilled"),
            "dropped": stats.get("dropped"),
            "rejected": stats.get("rejected"),
            "written": stats.get("written"),
            "write_errors": stats.get("write_errors"),
        },
        "rss": {
            **growth,
            "flag": flag,
            "max_mb": max((s.rss_mb for s in run["samples"]), default=float("nan")),
        },
        "exit_code": run["exit_code"],
        "training": run["training"],
    }


def run_soak(cfg: SoakConfig, work: Path) -> dict[str, Any]:
    student, teacher, proxy, config = start_stack(cfg, work)
    try:
        monitor = ProcessMonitor(proxy.child.popen.pid).start()
        outcomes, t0, skipped, training = asyncio.run(drive(cfg, proxy))
        stats = admin_stats(proxy)
        monitor.stop()
        signal_proxy(proxy, signal.SIGTERM)
        exit_code = proxy.child.popen.wait(timeout=60)
        rows = logged(config.db, {o.request_id for o in outcomes})
    finally:
        stop_all(proxy, student, teacher)
    return {
        "outcomes": outcomes,
        "t0": t0,
        "skipped": skipped,
        "training": training,
        "stats": stats,
        "samples": monitor.samples,
        "exit_code": exit_code,
        "rows": rows,
    }


def passed(result: dict[str, Any]) -> bool:
    log = result["log"]
    training_ok = not result["training"] or result["training"].get("status") == "promoted"
    return bool(
        log["equal"]
        and not log["dropped"]
        and result["exit_code"] == 0
        and not result["rss"]["flag"]
        and training_ok
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="distill-soak-"))
    try:
        result = summarise(cfg, run_soak(cfg, work))
    finally:
        if not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(report.render(result))
    report.write(result, cfg.out)
    print(f"\nwrote {cfg.out}" + (f"; work dir {work}" if cfg.keep else ""))
    return 0 if passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
