"""A proxy that dies abruptly (SIGKILL: no atexit, no lifespan) must not orphan its vLLM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from student_helpers import FAKE_SERVER, pid_alive

HOST_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from proxy.settings import Settings
    from proxy.student.supervisor import VLLMSupervisor

    async def main() -> None:
        settings = Settings(data_dir=Path(sys.argv[1]), student_served_name="fake")
        cmd = [sys.executable, sys.argv[2], "--port", "{port}", "--served-model-name", "fake"]
        sup = VLLMSupervisor(settings, command=cmd, echo=lambda _: None, poll_interval=0.02)
        await sup.start()
        assert await sup.wait_ready(10)
        print(sup.pid, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_sigkilled_parent_takes_the_child_down(tmp_path: Path) -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT, str(tmp_path), str(FAKE_SERVER)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout is not None
        child_pid = int(host.stdout.readline())
        assert pid_alive(child_pid)
        os.kill(host.pid, signal.SIGKILL)
        host.wait(5)
        assert _wait_dead(child_pid, 3), "the vLLM child outlived its SIGKILLed parent"
    finally:
        host.kill()
        host.wait()
        if host.stdout is not None:
            host.stdout.close()


def test_interpreter_exit_without_stop_takes_the_child_down(tmp_path: Path) -> None:
    # The host returns from main without stop(): the atexit hook must end the child.
    script = HOST_SCRIPT.replace("await asyncio.sleep(60)", "return")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(FAKE_SERVER)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    child_pid = int(done.stdout.split()[0])
    assert _wait_dead(child_pid, 3)
