"""`distill train`, `distill runs`, `distill rollback`.

A running server owns the DuckDB file and the student, so these ask its admin API first
(``server_url``, ``DISTILL_ADMIN_KEY`` as Bearer). `distill train` without a server (or with
``--dry-run``) runs the trainer in this process (`proxy.commands.train.train_command`,
imported lazily: torch is only needed then); ``--now`` insists on the server.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table

from proxy.logstore.backend import describe_log
from proxy.observability import render
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.cli import Subcommands

_TIMEOUT = httpx.Timeout(30.0, connect=2.0)
TERMINAL = ("promoted", "rejected", "failed", "skipped", "trained")


class NoServer(RuntimeError):
    """Nothing listens at server_url."""


class AdminError(RuntimeError):
    """The server answered with an error (message fit for the terminal)."""


class AdminClient:
    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self.base = settings.server_url.rstrip("/")
        key = settings.admin_key
        self.headers = {"authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        self.client = client or httpx.Client(timeout=_TIMEOUT, trust_env=False)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 202),
    ) -> tuple[int, Any]:
        try:
            resp = self.client.request(method, self.base + path, json=body, headers=self.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise NoServer(f"no server at {self.base}") from exc
        except httpx.HTTPError as exc:
            raise AdminError(f"the server at {self.base} failed: {type(exc).__name__}") from exc
        try:
            data = resp.json()
        except ValueError:
            data = {"error": {"message": resp.text[:300]}}
        if resp.status_code in (401, 403):
            raise AdminError(
                f"the server refused the admin request ({resp.status_code}): set "
                "DISTILL_ADMIN_KEY to its admin key"
            )
        if resp.status_code not in ok:
            message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
            raise AdminError(message or f"the server answered HTTP {resp.status_code}")
        return resp.status_code, data


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _console() -> Console:
    return Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None)


def train_config_file(config: str | None) -> tuple[Path | None, dict[str, Any]]:
    """TrainConfig overrides in --config: a JSON file, or a TOML file's ``[train]`` table (its
    top-level keys are server settings, already applied through ``train_*`` settings)."""
    if not config:
        return None, {}
    path = Path(config)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return path, data if isinstance(data, dict) else {}
    table = tomllib.loads(path.read_text()).get("train")
    return (path, table) if isinstance(table, dict) else (None, {})


# --- distill train ------------------------------------------------------------------------
def _progress_line(run: dict[str, Any]) -> str:
    progress = run.get("progress") or {}
    parts = [str(run.get("status")), str(progress.get("phase") or "")]
    if progress.get("max_steps"):
        parts.append(f"step {progress.get('step')}/{progress['max_steps']}")
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    if progress.get("eta_seconds") is not None:
        parts.append(f"eta {progress['eta_seconds']} s")
    return " | ".join(p for p in parts if p)


def follow_run(admin: AdminClient, run_id: str, interval: float = 2.0) -> int:
    """Prints progress until the run ends; exit 0 unless it failed."""
    last = ""
    while True:
        _, run = admin.call("GET", f"/admin/runs/{run_id}")
        if run.get("status") in TERMINAL:
            print(f"run {run_id} {run['status']}: {run.get('reason') or ''}".rstrip(": "))
            return 1 if run["status"] == "failed" else 0
        line = _progress_line(run)
        if line != last:
            print(f"run {run_id}: {line}", flush=True)
            last = line
        time.sleep(interval)


def _ask_server(admin: AdminClient, args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    body: dict[str, Any] = {"since": args.since, "config": overrides}
    if args.task:
        body["task"] = args.task
    status, data = admin.call("POST", "/admin/runs", body, ok=(202, 409))
    if status == 409:
        return _fail(data["error"]["message"])
    run_id = str(data["id"])
    print(f"run {run_id} started on {admin.base}; artifacts in its data_dir/runs/{run_id}")
    if args.detach:
        return 0
    return follow_run(admin, run_id, args.interval)


def _train_locally(args: argparse.Namespace, settings: Settings, config: Path | None) -> int:
    try:
        from proxy.commands.train import train_command
    except ImportError as exc:
        return _fail(
            f"the trainer is not installed here ({exc}); pip install 'distill-proxy[train]'"
        )
    return train_command(settings, args.since, args.dry_run, config)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    try:
        config_path, overrides = train_config_file(args.config)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        return _fail(f"--config: {exc}")
    if args.dry_run:
        return _train_locally(args, settings, config_path)
    admin = AdminClient(settings)
    try:
        return _ask_server(admin, args, overrides)
    except NoServer as exc:
        if args.now or args.task:
            flag = "--now" if args.now else "--task"
            return _fail(f"{exc}: `{flag}` asks a running `distill serve`")
        print(f"{exc}: training in this process", file=sys.stderr)
    except AdminError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("stopped following; the run continues on the server", file=sys.stderr)
        return 0
    return _train_locally(args, settings, config_path)


# --- distill runs / rollback ----------------------------------------------------------------
def runs_table(runs: list[dict[str, Any]]) -> Table:
    return render.runs_table(runs, "runs", "progress / reason", _detail)


def _detail(run: dict[str, Any]) -> str:
    return _progress_line(run) if run.get("progress") else str(run.get("reason") or "")


def _runs_from_file(settings: Settings, limit: int) -> list[dict[str, Any]]:
    from proxy.logstore import queries
    from proxy.logstore.snapshot import open_readonly

    with open_readonly(settings.db) as conn:
        return queries.runs(conn, limit)


def _runs(args: argparse.Namespace, settings: Settings) -> int:
    try:
        _, data = AdminClient(settings).call("GET", f"/admin/runs?limit={args.limit}")
        runs, origin = data["data"], f"server {settings.server_url}"
    except NoServer:
        try:
            runs, origin = _runs_from_file(settings, args.limit), describe_log(settings.db)
        except (FileNotFoundError, RuntimeError) as exc:
            return _fail(f"no server at {settings.server_url} and {exc}")
    except AdminError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    console = _console()
    console.print(f"from {origin}", soft_wrap=True, markup=False, highlight=False)
    console.print(runs_table(runs))
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    try:
        path = f"/admin/rollback?task={quote(args.task)}" if args.task else "/admin/rollback"
        _, data = AdminClient(settings).call("POST", path)
    except NoServer as exc:
        return _fail(f"{exc}: rollback switches the running server's student")
    except AdminError as exc:
        return _fail(str(exc))
    now, old = data["current"], data["rolled_back"]
    print(
        f"serving {now['name']} (version {now['version']}) again; "
        f"{old['name']} (version {old['version']}) stays loaded"
    )
    return 0


def register(sub: Subcommands) -> None:
    p = sub.add(
        "train", "run one distillation run (asks a running server, else trains here)", _train
    )
    p.add_argument(
        "--now",
        action="store_true",
        help="ask the running server to start a run now (fail if none runs)",
    )
    p.add_argument("--since", help="only rows since: an ISO date/time or 7d, 12h, 30m")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show the dataset a run would use (counts, filters, split) and stop",
    )
    p.add_argument("--detach", action="store_true", help="do not follow the server's run")
    p.add_argument(
        "--task", help="train this task only (per-task loop; default: the loop picks one)"
    )
    p.add_argument("--interval", type=float, default=2.0, help="progress poll interval (s)")
    p = sub.add("runs", "distillation runs: status, progress, outcome", _runs)
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add("rollback", "serve the previous student version again", _rollback)
    p.add_argument("--task", help="roll this task back (default: the version promoted last)")
