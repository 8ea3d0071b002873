"""VLLMSupervisor against a fake vLLM child: readiness, restarts with backoff, clean stops."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from student_helpers import pid_alive

from proxy.settings import Settings
from proxy.student.supervisor import VLLMSupervisor


async def until(pred: Callable[[], bool], timeout: float = 30.0) -> None:
    """Waits for `pred`; the deadline only ends a test that fails (a busy machine starts the
    fake child's Python slowly), it measures nothing."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def make(settings: Settings, command: list[str], lines: list[str]) -> VLLMSupervisor:
    return VLLMSupervisor(
        settings, command=command, echo=lines.append, poll_interval=0.02, health_interval=60
    )


def test_becomes_ready_serves_and_logs(fast_settings: Settings, fake_command) -> None:
    lines: list[str] = []

    async def scenario() -> None:
        sup = make(fast_settings, fake_command("--delay", "0.2"), lines)
        assert (sup.state, sup.url, sup.ready) == ("stopped", None, False)
        await sup.start()
        assert sup.state == "starting" and not sup.ready
        assert await sup.wait_ready(30)
        assert sup.url is not None and sup.url.endswith("/v1")
        models = httpx.get(f"{sup.url}/models", trust_env=False).json()
        assert [m["id"] for m in models["data"]] == ["fake-student"]
        pid = sup.pid
        assert pid is not None and pid_alive(pid)
        await sup.stop()
        assert not pid_alive(pid)
        assert (sup.state, sup.ready, sup.url) == ("stopped", False, None)
        assert sup.log_path is not None
        assert "application startup complete" in sup.log_path.read_text()
        assert sup.log_path.parent == fast_settings.data_dir / "logs"
        assert sup.log_path.name.startswith("vllm-")

    asyncio.run(scenario())
    assert any("vLLM output goes to" in ln for ln in lines)
    assert any("ready at http://127.0.0.1:" in ln for ln in lines)


def test_reason_explains_loading(fast_settings: Settings, fake_command) -> None:
    async def scenario() -> None:
        sup = make(fast_settings, fake_command("--delay", "0.5"), [])
        await sup.start()
        await until(lambda: "loading" in sup.reason)
        assert "log:" in sup.reason and sup.state == "starting"
        await sup.stop()

    asyncio.run(scenario())


def test_killed_child_is_restarted_on_same_url(fast_settings: Settings, fake_command) -> None:
    async def scenario() -> None:
        sup = make(fast_settings, fake_command(), [])
        await sup.start()
        assert await sup.wait_ready(30)
        first_pid, url = sup.pid, sup.url
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        await until(lambda: not sup.ready)
        assert await sup.wait_ready(30)
        assert sup.restarts == 1
        assert sup.pid not in (None, first_pid)
        assert sup.url == url
        await sup.stop()

    asyncio.run(scenario())


def test_crash_loop_backs_off_exponentially_with_cap(fast_settings: Settings, fake_command) -> None:
    lines: list[str] = []
    quick = fast_settings.model_copy(
        update={"vllm_restart_backoff": 0.02, "vllm_restart_backoff_max": 0.08}
    )

    async def scenario() -> None:
        sup = make(quick, fake_command("--exit-code", "3"), lines)
        await sup.start()
        await until(lambda: sup.restarts >= 4, timeout=90)
        assert sup.state in ("down", "starting") and not sup.ready
        await sup.stop()

    asyncio.run(scenario())
    delays = [ln.rsplit("restarting in ", 1)[1] for ln in lines if "restarting in" in ln]
    assert delays[:4] == ["0.02 s", "0.04 s", "0.08 s", "0.08 s"]  # doubles, capped at the max
    crash = next(ln for ln in lines if "restarting in" in ln)
    assert "exited with code 3 while loading" in crash
    assert "fatal: fake failure for the test" in crash  # the last log line is shown


def test_down_state_has_reason(fast_settings: Settings, fake_command) -> None:
    slow = fast_settings.model_copy(
        update={"vllm_restart_backoff": 30.0, "vllm_restart_backoff_max": 60.0}
    )

    async def scenario() -> None:
        sup = make(slow, fake_command("--exit-code", "3"), [])
        await sup.start()
        await until(lambda: sup.state == "down")
        assert "exited with code 3" in sup.reason and "restarting in 30 s" in sup.reason
        assert not sup.ready and sup.restarts == 0
        await sup.stop()
        assert sup.state == "stopped"

    asyncio.run(scenario())


def test_stop_kills_the_whole_process_group(
    fast_settings: Settings, fake_command, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"

    async def scenario() -> tuple[int, int]:
        sup = make(fast_settings, fake_command("--grandchild-pidfile", str(pidfile)), [])
        await sup.start()
        assert await sup.wait_ready(30)
        pid = sup.pid
        assert pid is not None
        grandchild = int(pidfile.read_text())
        assert pid_alive(grandchild)
        await sup.stop()
        return pid, grandchild

    pid, grandchild = asyncio.run(scenario())
    assert not pid_alive(pid)
    deadline = time.monotonic() + 2
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(grandchild)


def test_sigterm_ignoring_child_is_killed_after_grace(
    fast_settings: Settings, fake_command
) -> None:
    quick = fast_settings.model_copy(update={"vllm_stop_grace": 0.3})

    async def scenario() -> None:
        sup = make(quick, fake_command("--ignore-term"), [])
        await sup.start()
        assert await sup.wait_ready(30)
        pid = sup.pid
        assert pid is not None
        started = time.monotonic()
        await sup.stop()
        took = time.monotonic() - started
        assert 0.25 <= took < 2.0
        assert not pid_alive(pid)

    asyncio.run(scenario())


def test_unhealthy_child_is_restarted(fast_settings: Settings, fake_command) -> None:
    async def scenario() -> None:
        sup = VLLMSupervisor(
            fast_settings, command=fake_command("--unhealthy"), echo=lambda _line: None,
            poll_interval=0.02, health_interval=0.02,
        )  # fmt: skip
        await sup.start()
        assert await sup.wait_ready(30)
        await until(lambda: sup.restarts >= 1)
        assert "/health" in sup.reason or sup.state in ("starting", "ready")
        await sup.stop()

    asyncio.run(scenario())


def test_on_ready_callbacks_run_after_every_start(fast_settings: Settings, fake_command) -> None:
    calls: list[bool] = []

    async def scenario() -> None:
        sup = make(fast_settings, fake_command(), [])

        async def reload_adapter() -> None:
            calls.append(sup.state == "starting")  # runs before traffic is allowed

        async def broken() -> None:
            raise RuntimeError("a failing callback must not block readiness")

        sup.on_ready += [broken, reload_adapter]
        await sup.start()
        assert await sup.wait_ready(30)
        assert calls == [True]
        pid = sup.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await until(lambda: not sup.ready)
        assert await sup.wait_ready(30)
        assert calls == [True, True]
        await sup.stop()

    asyncio.run(scenario())


def test_missing_model_is_failed_without_restarts(fast_settings: Settings, fake_command) -> None:
    settings = fast_settings.model_copy(update={"student_base_model": "/nonexistent/model"})

    async def scenario() -> None:
        sup = make(settings, fake_command("--model", "{model}"), [])
        await sup.start()
        await until(lambda: sup.state == "failed")
        assert "not a HF model directory" in sup.reason
        assert sup.url is None and sup.restarts == 0
        await sup.stop()

    asyncio.run(scenario())


def test_wait_ready_times_out(fast_settings: Settings, fake_command) -> None:
    async def scenario() -> None:
        sup = make(fast_settings, fake_command("--delay", "5"), [])
        await sup.start()
        assert not await sup.wait_ready(0.1)
        await sup.stop()

    asyncio.run(scenario())
