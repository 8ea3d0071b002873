"""A child process in its own process group that cannot outlive the proxy.

vLLM forks helpers (the engine core), so stopping it means signalling the whole group, and a
SIGKILLed proxy must not leave it running: the child asks the kernel for a death signal
(PR_SET_PDEATHSIG) when its parent goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from proxy.settings.environment import child_environment

PR_SET_PDEATHSIG = 1
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _death_signal_preexec() -> Callable[[], None] | None:
    """A preexec_fn setting PR_SET_PDEATHSIG=SIGTERM (Linux only).

    The libc handle is resolved before fork: loading libraries in the forked child of a
    threaded process can deadlock. The kernel sends the signal when the *thread* that forked
    dies, so spawn from the long-lived event loop thread, never from a pool worker.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def last_log_line(path: Path, *, tail_bytes: int = 8192) -> str:
    """Last non-blank line of a log file (progress bars' carriage returns count as breaks)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - tail_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [_ANSI.sub("", ln).strip() for ln in re.split(r"[\r\n]+", text)]
    return next((ln for ln in reversed(lines) if ln), "")


class ChildProcess:
    """One running child: its own session (pgid == pid), output appended to a log file."""

    def __init__(self, popen: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self._popen = popen
        self._log = log

    @classmethod
    def spawn(
        cls, cmd: list[str], env_overrides: Mapping[str, str], log_path: Path
    ) -> ChildProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {cmd}\n".encode())
        log.flush()
        env = child_environment(env_overrides)
        try:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_death_signal_preexec(),  # noqa: PLW1509 - see _death_signal_preexec
            )
        except OSError:
            log.close()
            raise
        return cls(popen, log)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        """Exit code, or None while it runs."""
        return self._popen.poll()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    async def terminate(self, grace: float, *, poll_interval: float = 0.05) -> int | None:
        """SIGTERM the group, SIGKILL it after `grace` seconds; returns the exit code."""
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self._popen.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(poll_interval)
        return self._finish()

    def terminate_sync(self, grace: float) -> int | None:
        """Blocking variant for interpreter exit, when no event loop runs any more."""
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=grace)
        return self._finish()

    def _finish(self) -> int | None:
        # Helpers of a dead leader stay in its group: SIGKILL whatever is left, then reap.
        self._signal_group(signal.SIGKILL)
        code = self._popen.wait()
        self._log.close()
        return code
