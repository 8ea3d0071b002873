"""`distill stats` and `distill logs`: read the request log through the running server's
admin API, or straight from the DuckDB file when the server is stopped."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console

from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.cli import Subcommands


def _console() -> Console:
    return Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _breakdown(args: argparse.Namespace, settings: Settings) -> int:
    from proxy.observability.breakdown import print_breakdown
    from proxy.observability.cli_source import SourceError, StatsSource
    from proxy.observability.task_render import print_tasks

    source = StatsSource(settings)
    try:
        if args.by == "task":
            answer = source.tasks(args.since)
        else:
            answer = source.breakdown(args.by, args.since)
    except (SourceError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(answer.data, indent=2, default=str))
    elif args.by == "task":
        print_tasks(_console(), answer.data, answer.origin)
    else:
        print_breakdown(_console(), answer.data, answer.origin)
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    if args.by:
        return _breakdown(args, settings)
    from proxy.observability.cli_source import SourceError, StatsSource
    from proxy.observability.render import print_stats

    try:
        answer = StatsSource(settings).stats(args.since)
    except (SourceError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(answer.data, indent=2, default=str))
    else:
        print_stats(_console(), answer.data, answer.origin)
    return 0


def _cursor(rows: list[dict[str, Any]], previous: tuple[str, str] | None) -> tuple[str, str] | None:
    if not rows:
        return previous
    last = rows[-1]
    return str(last["created_at"]), str(last["id"])


def _logs(args: argparse.Namespace, settings: Settings) -> int:
    from proxy.observability.cli_source import SourceError, StatsSource
    from proxy.observability.render import logs_table

    source = StatsSource(settings)
    console = _console()
    try:
        answer = source.logs(args.n)
        if args.json:
            for row in answer.data:
                print(json.dumps(row, default=str))
        else:
            console.print(f"from {answer.origin}", soft_wrap=True, markup=False, highlight=False)
            console.print(logs_table(answer.data, f"last {len(answer.data)} requests"))
        cursor = _cursor(answer.data, None)
        while args.follow:
            time.sleep(args.interval)
            rows = source.logs(500, cursor).data
            if rows and args.json:
                for row in rows:
                    print(json.dumps(row, default=str), flush=True)
            elif rows:
                console.print(logs_table(rows, None, header=False))
            cursor = _cursor(rows, cursor)
    except SourceError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 0
    return 0


def register(sub: Subcommands) -> None:
    p = sub.add(
        "stats", "summary of requests, fallback rate, cost and savings, latency, runs", _stats
    )
    p.add_argument("--since", default="24h", help="window: 15m, 24h, 7d, an ISO time, or all")
    p.add_argument("--json", action="store_true", help="print the raw JSON document")
    p.add_argument(
        "--by",
        choices=["label", "tag", "task"],
        help="where the student is weak: per label (closed-set tasks) or per tag; per task: "
        "requests, student share, teacher calls, agreement, gold accuracy, savings, serving",
    )
    p = sub.add("logs", "recent requests from the request log", _logs)
    p.add_argument(
        "--tail",
        action="store_true",
        help="show the newest requests (the default; kept for `logs --tail`)",
    )
    p.add_argument("-n", type=int, default=20, help="how many requests (default 20)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new requests")
    p.add_argument("--interval", type=float, default=1.0, help="poll interval with --follow")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
