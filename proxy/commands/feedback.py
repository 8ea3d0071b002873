"""`distill feedback REQUEST_ID --good|--bad [--correction TEXT]` and
`distill feedback import FILE.jsonl` (objects of ``POST /v1/feedback``, one a line).

A running server owns the DuckDB file, so both go through its ``POST /v1/feedback`` with
the admin key; when no server runs they write the log directly, the DuckDB file or the
PostgreSQL database (same validation, same redaction, same table).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from proxy.commands.runs import AdminClient, AdminError, NoServer
from proxy.protocol import FeedbackRequest
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.cli import Subcommands


@dataclass
class Outcome:
    stored: int = 0
    unknown: list[str] = field(default_factory=list)
    origin: str = ""


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def read_jsonl(path: Path) -> list[FeedbackRequest]:
    """Every line validated first: a bad file stores nothing (ValueError lists the lines)."""
    items: list[FeedbackRequest] = []
    problems: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(FeedbackRequest.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            problems.append(f"line {number}: {_first_error(exc)}")
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(f"{path}: {len(problems)} invalid line(s), nothing stored: {shown}{more}")
    return items


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return f"{loc or 'line'}: {first.get('msg')}"
    return str(exc)


def _via_server(admin: AdminClient, items: Sequence[FeedbackRequest], source: str) -> Outcome:
    outcome = Outcome(origin=f"server {admin.base}")
    for item in items:
        body = {**item.model_dump(), "source": source}
        status, _ = admin.call("POST", "/v1/feedback", body, ok=(200, 404))
        if status == 404:
            outcome.unknown.append(item.request_id)
        else:
            outcome.stored += 1
    return outcome


def _via_file(settings: Settings, items: Sequence[FeedbackRequest], source: str) -> Outcome:
    import duckdb

    from proxy.feedback.service import guarded, text_guards
    from proxy.logstore import feedback as store
    from proxy.logstore.backend import is_postgres_url
    from proxy.logstore.snapshot import open_writable

    if not is_postgres_url(settings.db) and not Path(settings.db).exists():
        raise FileNotFoundError(f"no request log at {settings.db}")
    guards = text_guards(settings)
    try:
        conn = open_writable(settings.db)
    except duckdb.IOException as exc:
        raise AdminError(f"{settings.db} is locked by another process: {exc}") from None
    with conn:
        known = store.resolve_many(conn, sorted({i.request_id for i in items}))
        batch = [
            store.new_feedback(
                known[i.request_id][0],
                i.rating,
                guarded(guards, i.correction),
                guarded(guards, i.note),
                source=source,
            )
            for i in items
            if i.request_id in known
        ]
        store.insert_many(conn, store.stamped_in_order(batch))
    unknown = [i.request_id for i in items if i.request_id not in known]
    # A PostgreSQL URL may hold a password: not echoed.
    origin = "the PostgreSQL log" if is_postgres_url(settings.db) else f"file {settings.db}"
    return Outcome(stored=len(batch), unknown=unknown, origin=origin)


def send(settings: Settings, items: Sequence[FeedbackRequest], source: str) -> Outcome:
    """Through the running server if there is one, else into the DuckDB file."""
    try:
        return _via_server(AdminClient(settings), items, source)
    except NoServer:
        return _via_file(settings, items, source)


def _report(outcome: Outcome) -> int:
    print(f"stored {outcome.stored} feedback(s) in {outcome.origin}")
    if outcome.unknown:
        shown = ", ".join(outcome.unknown[:5]) + (", ..." if len(outcome.unknown) > 5 else "")
        print(f"error: {len(outcome.unknown)} unknown request id(s): {shown}", file=sys.stderr)
        return 1
    return 0


def _single(args: argparse.Namespace) -> FeedbackRequest:
    body: dict[str, Any] = {
        "request_id": args.request_id,
        "rating": "good" if args.good else "bad" if args.bad else None,
        "correction": args.correction,
        "note": args.note,
    }
    return FeedbackRequest.model_validate(body)


def _feedback(args: argparse.Namespace, settings: Settings) -> int:
    importing = args.request_id == "import" and args.file is not None
    try:
        if importing:
            items, source = read_jsonl(Path(args.file)), "import"
        elif args.file is not None:
            return _fail("usage: distill feedback import FILE.jsonl | REQUEST_ID --good|--bad")
        else:
            items, source = [_single(args)], "cli"
        return _report(send(settings, items, source))
    except ValidationError as exc:
        return _fail(_first_error(exc))
    except (OSError, ValueError, AdminError) as exc:
        return _fail(str(exc))


def register(sub: Subcommands) -> None:
    p = sub.add(
        "feedback",
        "rate or correct a logged request (or import feedback from a JSONL file)",
        _feedback,
    )
    p.add_argument("request_id", metavar="REQUEST_ID", help="a logged request id, or `import`")
    p.add_argument("file", nargs="?", metavar="FILE.jsonl", help="with `import`: the file")
    rating = p.add_mutually_exclusive_group()
    rating.add_argument("--good", action="store_true", help="the answer was right")
    rating.add_argument("--bad", action="store_true", help="the answer was wrong")
    p.add_argument("--correction", help="the right answer (becomes the gold training label)")
    p.add_argument("--note", help="free text kept with the feedback")
