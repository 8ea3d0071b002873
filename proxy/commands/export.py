"""`distill export --out FILE.parquet [--since ...]`: the log as a snapshot Parquet file.

The same format the trainer reads (`proxy.logstore.snapshot`), from either engine. A
PostgreSQL log is shared, so this works while replicas serve; a DuckDB file can be read
only while no server owns it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.cli import Subcommands


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from proxy.logstore.sink import FAILURES
    from proxy.logstore.snapshot import export_snapshot, open_readonly
    from proxy.observability.window import parse_since

    out = Path(args.out)
    if out.suffix != ".parquet":
        print(f"error: --out {out}: expected a .parquet file name", file=sys.stderr)
        return 2
    try:
        since = parse_since(args.since)
        with open_readonly(settings.db) as conn:
            export_snapshot(conn, out, since, include_unstored=args.include_unstored)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FAILURES as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


def register(sub: Subcommands) -> None:
    parser = sub.add(
        "export",
        "Write the request log (or its rows since --since) to a Parquet snapshot.",
        _export,
    )
    parser.add_argument("--out", required=True, help="Parquet file to write")
    parser.add_argument("--since", help="only rows since: a duration (24h, 7d) or ISO time")
    parser.add_argument(
        "--include-unstored",
        action="store_true",
        help="also rows clients sent with store: false (left out of training snapshots)",
    )
