"""Starting and stopping the benchmark's servers: the replay teacher and `distill serve`."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common.procs import VENV_BIN, Child, child_env, free_port, start, stop, wait_http


@dataclass(slots=True)
class Server:
    """A running child with its base URL (no /v1)."""

    child: Child
    root: str

    @property
    def v1(self) -> str:
        return f"{self.root}/v1"


@dataclass(frozen=True, slots=True)
class TeacherSpec:
    """Replay teacher knobs (see `replay_teacher.py`)."""

    accuracy: float = 0.92
    latency_ms: float = 300.0
    price_in: float = 2.5
    price_out: float = 10.0
    seed: int = 0
    api_key: str = "sk-replay-teacher"


def start_teacher(spec: TeacherSpec, logs: Path, timeout: float = 120.0) -> Server:
    """The replay teacher on a free loopback port, ready to answer."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.banking77.replay_teacher",
        "--port",
        str(port),
        "--accuracy",
        str(spec.accuracy),
        "--latency-ms",
        str(spec.latency_ms),
        "--price-in",
        str(spec.price_in),
        "--price-out",
        str(spec.price_out),
        "--seed",
        str(spec.seed),
        "--api-key",
        spec.api_key,
        "--tokenizer",
        "auto",
    ]
    child = start("replay-teacher", argv, logs / "replay_teacher.log", env=child_env({}))
    server = Server(child, f"http://127.0.0.1:{port}")
    wait_http(f"{server.root}/health", child, timeout)
    return server


def distill_command() -> list[str]:
    """`distill` from the same venv as this interpreter (console script or module)."""
    script = VENV_BIN / "distill"
    return [str(script)] if script.exists() else [sys.executable, "-m", "proxy.cli"]


def start_proxy(name: str, env: Mapping[str, str], logs: Path, ready_timeout: float) -> Server:
    """`distill serve` on a free port with `env` (DISTILL_* settings); waits for /readyz."""
    port = free_port()
    argv = [*distill_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = start(name, argv, logs / f"{name}.log", env=child_env(env))
    server = Server(child, f"http://127.0.0.1:{port}")
    try:
        wait_http(f"{server.root}/readyz", child, ready_timeout, interval=2.0)
    except BaseException:
        stop(child)
        raise
    return server


def stop_server(server: Server | None, timeout: float = 60.0) -> int | None:
    return stop(server.child, timeout) if server is not None else None
