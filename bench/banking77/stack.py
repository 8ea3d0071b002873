"""The Banking77 benchmark's servers: the harness's stack with the Banking77 replay teacher."""

from __future__ import annotations

from pathlib import Path

from bench.harness.stack import (
    Server,
    TeacherSpec,
    distill_command,
    start_proxy,
    start_replay_teacher,
    stop_server,
)

__all__ = [
    "Server",
    "TeacherSpec",
    "distill_command",
    "start_proxy",
    "start_teacher",
    "stop_server",
]

TEACHER_MODULE = "bench.banking77.replay_teacher"


def start_teacher(spec: TeacherSpec, logs: Path, timeout: float = 120.0) -> Server:
    """The Banking77 replay teacher on a free loopback port, ready to answer."""
    return start_replay_teacher(
        TEACHER_MODULE, spec, logs, ["--accuracy", str(spec.accuracy)], timeout
    )
