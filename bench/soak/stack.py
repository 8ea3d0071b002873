"""The loopback stack of the soak bench and the process-level chaos tests:
two fake OpenAI servers (student, teacher) and a `distill serve` subprocess."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common.procs import child_env, free_port, start, stop, wait_http
from bench.harness.stack import Server, start_proxy

FAKE_SERVER = "tests.hardening.fake_openai_server"


def start_fake(
    name: str,
    logs: Path,
    api_key: str | None = None,
    latency_ms: float = 0.0,
    port: int | None = None,
    base_words: str | None = None,
) -> Server:
    """A fake OpenAI server answering to ``#<name>=...`` directives; waits until it serves."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        FAKE_SERVER,
        "--port",
        str(port),
        "--name",
        name,
        "--latency-ms",
        str(latency_ms),
    ]
    if api_key:
        argv += ["--api-key", api_key]
    if base_words:
        argv += ["--base-words", base_words]
    child = start(f"fake-{name}", argv, logs / f"fake_{name}.log", env=child_env({}))
    server = Server(child, f"http://127.0.0.1:{port}")
    wait_http(f"{server.root}/health", child, timeout=30, interval=0.1)
    return server


@dataclass
class ProxyConfig:
    """What a `distill serve` of the stack needs; `extra` holds more DISTILL_* settings."""

    student: Server
    teacher: Server
    teacher_key: str
    db: Path
    data_dir: Path
    extra: Mapping[str, str]

    def env(self) -> dict[str, str]:
        return {
            "DISTILL_STUDENT_URL": self.student.v1,
            "DISTILL_STUDENT_MODEL": "fake-student",
            "DISTILL_TEACHER_URL": self.teacher.v1,
            "DISTILL_TEACHER_API_KEY": self.teacher_key,
            "DISTILL_DB": str(self.db),
            "DISTILL_DATA_DIR": str(self.data_dir),
            "DISTILL_CONFIDENCE_THRESHOLD": "-0.5",
            "DISTILL_TEACHER_BACKOFF": "0.05",
            **self.extra,
        }


def start_distill(config: ProxyConfig, logs: Path, name: str = "proxy") -> Server:
    """`distill serve` on a free loopback port, ready (GET /readyz is 200)."""
    return start_proxy(name, config.env(), logs, ready_timeout=60)


def signal_proxy(server: Server, sig: signal.Signals) -> None:
    """Signals the `distill serve` process itself (not its process group)."""
    os.kill(server.child.popen.pid, sig)


def stop_all(*servers: Server | None) -> None:
    for server in servers:
        if server is not None:
            stop(server.child, timeout=15)
