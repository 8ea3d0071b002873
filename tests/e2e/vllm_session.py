"""The session vLLM handle used by the e2e fixtures (a module: conftest names collide)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from proxy.student.process import last_log_line
from proxy.student.supervisor import VLLMSupervisor
from tests.paths import E2E_DATA

STARTUP_TIMEOUT_S = 900.0
T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a daemon thread, so sync tests can drive async code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="e2e-vllm", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def start_ready(runner: LoopThread, supervisor: Any, what: str) -> float:
    """Starts a `VLLMSupervisor` on `runner` and waits until it serves; fails the test with
    its reason and last log line otherwise. Returns the cold start in seconds."""
    started = time.monotonic()
    runner.run(supervisor.start())
    ready = runner.run(supervisor.wait_ready(STARTUP_TIMEOUT_S), STARTUP_TIMEOUT_S + 5)
    if not ready or supervisor.url is None:
        tail = last_log_line(supervisor.log_path) if supervisor.log_path else ""
        pytest.fail(f"{what} not ready: {supervisor.reason}; last log line: {tail}")
    return time.monotonic() - started


@dataclass
class RealVLLM:
    """Handle on the session's vLLM. Numbers are measured once, at session start."""

    base_url: str  # ".../v1"
    model_name: str
    supervisor: VLLMSupervisor
    model_dir: Path
    cold_start_s: float
    first_request_s: float = 0.0
    _runner: LoopThread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.supervisor.pid

    @property
    def log_path(self) -> Path | None:
        return self.supervisor.log_path

    def kill(self) -> int:
        """SIGKILLs the vLLM API server (a crash); returns its pid."""
        pid = self.supervisor.pid
        assert pid is not None, "vLLM is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> bool:
        assert self._runner is not None
        return self._runner.run(self.supervisor.wait_ready(timeout), timeout + 5)

    def warm_up(self) -> float:
        """One small request shaped like the proxy's (logprobs on): vLLM's first one is slow."""
        started = time.monotonic()
        resp = httpx.post(
            f"{self.base_url}/chat/completions",
            json={
                "model": self.model_name,
                "messages": [{"role": "user", "content": "Say hi."}],
                "max_tokens": 16,
                "logprobs": True,
                "top_logprobs": 5,
            },
            timeout=300,
            trust_env=False,
        )
        resp.raise_for_status()
        return time.monotonic() - started


def record(numbers: dict[str, float]) -> None:
    """Merges measured numbers into data/test-artifacts/e2e-data/numbers.json (for the report)."""
    path = E2E_DATA / "numbers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(path.read_text()) if path.is_file() else {}
    current.update({k: round(v, 3) for k, v in numbers.items()})
    path.write_text(json.dumps(current, indent=2, sort_keys=True))
