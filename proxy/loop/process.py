"""The training subprocess: spawned with asyncio in its own process group (so the trainer's
own children, e.g. dataloader workers, die with it), waited for without blocking the event
loop, and killed as a group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger("distill.loop")

KILL_GRACE_S = 10.0


async def spawn(
    cmd: list[str], log_path: Path, cwd: Path | None = None, nice: int = 0
) -> asyncio.subprocess.Process:
    """Starts `cmd` in a new session; `nice` lowers its priority (its children inherit it)."""
    with log_path.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, cwd=cwd,
        )  # fmt: skip
    if nice:
        # From the parent, right after the exec: preexec_fn is unsafe in a threaded server,
        # and the trainer starts no child of its own this early.
        own = os.getpriority(os.PRIO_PROCESS, 0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, proc.pid, min(19, own + nice))
    return proc


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def terminate(proc: asyncio.subprocess.Process, grace: float = KILL_GRACE_S) -> int:
    """SIGTERM to the group, SIGKILL after `grace` seconds; returns the exit code."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    else:
        signal_group(proc.pid, signal.SIGKILL)  # stray children of a finished leader
    return proc.returncode if proc.returncode is not None else -9


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by {name}"
    return f"exit code {code}"


def kill_orphan(pid: int | None, marker: str) -> bool:
    """Kills a trainer left behind by a previous server process, if `pid` still runs it.

    The command line must contain `marker` (the run directory): a recycled pid is left alone.
    """
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    if marker not in cmdline:
        return False
    log.warning("killing orphaned trainer pid %d (%s)", pid, marker)
    signal_group(pid, signal.SIGKILL)
    return True
