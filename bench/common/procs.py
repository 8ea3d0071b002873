"""Child processes of a benchmark: start with a log file, wait until ready, stop by pid.

Each child runs in its own session so that stopping it also stops what it started
(`distill serve` supervises a vLLM child); nothing else is ever signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


class ProcessFailed(RuntimeError):
    """A child exited early or never became ready."""


@dataclass(slots=True)
class Child:
    """A started child process and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(overrides: Mapping[str, str], drop_prefixes: Sequence[str] = ("DISTILL_",)) -> dict:
    """The parent's environment without stray `DISTILL_*` settings, plus `overrides`.

    A developer's own DISTILL_* variables must not leak into a benchmark's server.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}
    return {**inherited, **overrides}


def start(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
) -> Child:
    """Starts `argv` in a new session with stdout+stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    return Child(name=name, popen=popen, log_path=log_path)


def stop(child: Child, timeout: float = 30.0) -> int | None:
    """SIGTERM to the child's process group, SIGKILL after `timeout`; returns the exit code."""
    if child.popen.poll() is not None:
        return child.popen.returncode
    pgid = child.popen.pid  # its own session: the group id is its pid
    try:
        os.killpg(pgid, signal.SIGTERM)
        return child.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        return child.popen.wait(timeout=10)
    except ProcessLookupError:
        return child.popen.wait(timeout=10)


def wait_http(url: str, child: Child | None, timeout: float, interval: float = 0.5) -> float:
    """Polls GET `url` until 200; returns seconds waited. Fails fast if the child died."""
    start_time = time.monotonic()
    last = "no answer"
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() - start_time < timeout:
            if child is not None and not child.alive():
                raise ProcessFailed(
                    f"{child.name} exited with {child.popen.returncode} while waiting for "
                    f"{url}; log {child.log_path}:\n{child.tail()}"
                )
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return time.monotonic() - start_time
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(interval)
    where = f"; log {child.log_path}:\n{child.tail()}" if child else ""
    raise ProcessFailed(f"{url} not ready after {timeout:.0f}s (last: {last}){where}")
