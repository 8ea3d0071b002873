"""The app with an embedded (supervised) student, a fake vLLM child: what /readyz says while
it loads and once it is ready, and the default max_tokens cap of a CPU student."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.app import Transports, create_app
from proxy.settings import Settings
from tests.fakes import FakeUpstream
from tests.server_thread import running


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        student_served_name="fake-student",
        teacher_url="http://teacher.test/v1",
        vllm_startup_timeout=60.0,
        vllm_stop_grace=2.0,
        log_flush_interval=0.05,
    )


def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{url}/readyz", timeout=5, trust_env=False)
    return response.status_code, response.json()


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_readyz_tells_loading_then_ready_without_stale_reasons(
    tmp_path: Path, fake_command: Callable[..., list[str]]
) -> None:
    # The fake child loads until the test creates `loaded`: on a busy machine a fixed delay
    # could end before the first /readyz.
    loaded = tmp_path / "loaded"
    transports = Transports(
        teacher=FakeUpstream().transport(), vllm_command=fake_command("--wait-for", str(loaded))
    )
    app = create_app(
        _settings(tmp_path).model_copy(update={"vllm_startup_timeout": 120.0}), transports
    )
    with running(app) as url:
        status, body = _readyz(url)
        assert status == 503 and body["ready"] is False
        assert "student not ready" in body["reasons"][0]
        _until(lambda: "loading" in _readyz(url)[1]["supervisor"]["reason"])
        status, body = _readyz(url)
        assert status == 503 and "so far" in body["reasons"][0]
        loaded.touch()
        _until(lambda: _readyz(url)[0] == 200, timeout=60)
        _until(lambda: _readyz(url)[1]["student"][0]["models"] != [])
        status, body = _readyz(url)
        assert body["ready"] is True and body["reasons"] == []
        (student,) = body["student"]
        assert student["ready"] is True and student["reason"] == ""  # no "loading ... so far"
        assert student["models"] == ["fake-student"]
        assert body["supervisor"]["state"] == "ready" and body["supervisor"]["reason"] == ""


@pytest.mark.parametrize(("device", "cap"), [("cpu", 256), ("cuda", None)])
def test_an_embedded_cpu_student_is_capped_by_default(
    tmp_path: Path,
    fake_command: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    device: str,
    cap: int | None,
) -> None:
    monkeypatch.setattr("proxy.student.command.detect_device", lambda *a: device)
    transports = Transports(teacher=FakeUpstream().transport(), vllm_command=fake_command())
    app = create_app(_settings(tmp_path), transports)
    with running(app):
        assert app.state.chat.student_cap == cap
    explicit = _settings(tmp_path).model_copy(update={"student_max_tokens": 50})
    app = create_app(explicit, transports)
    with running(app):
        assert app.state.chat.student_cap == 50
