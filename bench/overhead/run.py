"""Proxy overhead: the same load direct, through distill-proxy and through LiteLLM.

    python -m bench.overhead.run [--duration 5] [--concurrency 1,16,64] [--repeats 2]
        [--variants pg:1,pg:2,duckdb:1:durable,duckdb:1:fsync]

A fast fake upstream on loopback answers every request; the three targets are
measured in interleaved runs (rotating order per repeat) at each concurrency, for
non-streaming and streaming requests. Prints a table with throughput, p50/p99
latency and the ratios; writes bench/overhead/results/latest.json. Run it under
`flock /tmp/heavy.lock` on shared machines.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common.console import say
from bench.common.machine import machine_info
from bench.common.procs import ProcessFailed, stop
from bench.overhead.loadgen import LoadError, run_load
from bench.overhead.summary import compare, medians, table
from bench.overhead.targets import (
    MODEL,
    Target,
    check_student_route,
    start_fake_upstream,
    start_litellm,
    start_proxy,
)
from bench.overhead.variants import (
    Variant,
    cluster_for,
    compare_variants,
    parse_variants,
    variant_env,
    variants_table,
)

HERE = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]


def body(mode: str) -> bytes:
    payload: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
    if mode == "stream":
        payload["stream"] = True
    return json.dumps(payload).encode()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.overhead.run", description=__doc__)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repeats per cell")
    p.add_argument("--modes", default="nonstream,stream")
    p.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM comparison")
    p.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument(
        "--variants",
        default="",
        help="more proxies: ENGINE:WORKERS[:durable],... (e.g. pg:1,pg:2,duckdb:1:durable)",
    )
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    return p.parse_args(argv)


def start_targets(
    work: Path,
    with_litellm: bool,
    notes: list[str],
    variants: list[Variant],
    stack: ExitStack,
) -> list[Target]:
    direct = start_fake_upstream(work / "logs")
    upstream_v1 = direct.chat_url.rsplit("/chat/completions", 1)[0]
    targets = [direct]
    try:
        admin = secrets.token_urlsafe(16)
        targets.append(start_proxy(upstream_v1, work, admin))
        cluster = cluster_for(variants, stack)
        for variant in variants:
            if variant.refused:
                notes.append(f"{variant.name}: {variant.refused}")
                say(notes[-1])
                continue
            env = variant_env(variant, cluster)
            targets.append(start_proxy(upstream_v1, work, admin, variant.name, env))
        if with_litellm:
            try:
                targets.append(start_litellm(upstream_v1, work))
            except (ProcessFailed, subprocess.CalledProcessError, OSError) as exc:
                notes.append(f"LiteLLM skipped: {type(exc).__name__}: {str(exc)[:300]}")
                say(notes[-1])
    except BaseException:
        stop_all(targets)
        raise
    return targets


def stop_all(targets: list[Target]) -> None:
    for target in reversed(targets):
        if target.child is not None:
            stop(target.child)


def measure(
    targets: list[Target], args: argparse.Namespace, modes: list[str], levels: list[int]
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for mode in modes:
        payload = body(mode)
        for target in targets:  # warm-up: connection pools, caches, JIT-free but lazy imports
            run_load(target.chat_url, payload, target.key, 16, 1.0, args.tool)
        for conc in levels:
            for rep in range(args.repeats):
                shift = (rep + conc) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    result = run_load(
                        target.chat_url, payload, target.key, conc, args.duration, args.tool
                    )
                    runs.append(
                        {
                            "mode": mode,
                            "concurrency": conc,
                            "target": target.name,
                            "repeat": rep,
                            **result.to_dict(),
                        }
                    )
                    say(
                        f"{mode} c={conc} {target.name}: {result.rps:.0f} req/s, "
                        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                        f"errors {result.errors}"
                    )
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    work = HERE / "work" / time.strftime("%Y%m%d-%H%M%S")
    notes: list[str] = []
    started = time.time()
    variants = parse_variants(args.variants)
    with ExitStack() as stack:
        targets = start_targets(work, not args.no_litellm, notes, variants, stack)
        try:
            for mode in modes:
                route = check_student_route(targets[1], body(mode))
                if route != "student":
                    notes.append(f"proxy route for {mode} was {route!r}, not 'student'")
            runs = measure(targets, args, modes, levels)
        except (LoadError, ProcessFailed) as exc:
            say(f"overhead benchmark failed: {exc}")
            return 1
        finally:
            stop_all(targets)
    cells = medians(runs)
    rows = compare(cells)
    print(table(cells, rows))
    variant_rows = compare_variants(cells, [v.name for v in variants])
    if variant_rows:
        print()
        print(variants_table(variant_rows))
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "settings": {
            "duration_s": args.duration,
            "concurrency": levels,
            "repeats": args.repeats,
            "modes": modes,
            "tool": runs[0]["tool"] if runs else None,
            "variants": [v.name for v in variants],
        },
        "minutes": (time.time() - started) / 60,
        "cells": [
            {"mode": m, "concurrency": c, "target": t, **v}
            for (m, c, t), v in sorted(cells.items())
        ],
        "comparison": rows,
        "variants": variant_rows,
        "runs": runs,
        "notes": notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")
    for note in notes:
        say(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
