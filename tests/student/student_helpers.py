"""Shared helpers of the student tests (a module, not conftest: conftest names collide)."""

from __future__ import annotations

from pathlib import Path

FAKE_SERVER = Path(__file__).with_name("fake_vllm.py")


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (dead, not yet reaped by init) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
