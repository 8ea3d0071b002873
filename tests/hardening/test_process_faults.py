"""Upstream faults with real sockets (timeouts, killed processes) through `distill serve`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.soak.load import stream_complete
from bench.soak.stack import ProxyConfig, start_distill, start_fake, stop_all
from tests.hardening.conftest import TEACHER_KEY, query

pytestmark = pytest.mark.chaos


def chat(url: str, prompt: str, stream: bool = False, timeout: float = 30) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=timeout)


def test_teacher_hanging_before_the_first_byte_degrades_to_the_student(serve: Any) -> None:
    proxy, _ = serve(DISTILL_TEACHER_TIMEOUT="0.5", DISTILL_TEACHER_DEADLINE="1.5")
    for stream in (False, True):
        started = time.monotonic()
        response = chat(proxy.v1, "#student=unsure #teacher=hang", stream=stream)
        assert time.monotonic() - started < 4
        assert response.status_code == 200
        assert response.headers["x-distill-degraded"] == "teacher-unavailable"
        if stream:
            assert stream_complete(response.content) == (True, None)
        else:
            assert response.json()["choices"][0]["message"]["content"]


def test_teacher_stalling_mid_stream_ends_with_an_error_event(serve: Any) -> None:
    proxy, config = serve(DISTILL_TEACHER_TIMEOUT="0.5")
    started = time.monotonic()
    response = chat(proxy.v1, "#student=unsure #teacher=stall:5000", stream=True)
    assert time.monotonic() - started < 4
    assert stream_complete(response.content) == (False, "stream_error_event")
    assert response.content.endswith(b"data: [DONE]\n\n")
    signal_stop(proxy)
    rows = query(config.db, "SELECT status_code, error FROM requests")
    assert rows[0][0] == 502 and "teacher stream" in rows[0][1]


def signal_stop(proxy: Any) -> None:
    os.kill(proxy.child.popen.pid, signal.SIGTERM)
    assert proxy.child.popen.wait(timeout=40) == 0


def test_student_killed_mid_request_falls_back_then_comes_back(fakes: Any, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    student = start_fake("student", logs)
    port = int(student.root.rsplit(":", 1)[1])
    config = ProxyConfig(
        student,
        fakes.teacher,
        TEACHER_KEY,
        tmp_path / "d.duckdb",
        tmp_path / "data",
        {"DISTILL_STUDENT_TIMEOUT": "10"},
    )
    proxy = start_distill(config, logs)
    revived = None
    try:
        assert chat(proxy.v1, "hi").headers["x-distill-route"] == "student"
        with httpx.Client(timeout=30) as client:
            body = {"model": "m", "messages": [{"role": "user", "content": "#student=slow:2000"}]}
            pending = client.build_request("POST", f"{proxy.v1}/chat/completions", json=body)
            import threading

            result: dict[str, httpx.Response] = {}
            sender = threading.Thread(target=lambda: result.update(r=client.send(pending)))
            sender.start()
            time.sleep(0.7)  # the student is working on it
            os.kill(student.child.popen.pid, signal.SIGKILL)  # vLLM dies mid-request
            sender.join(30)
        killed = result["r"]
        assert killed.status_code == 200 and killed.headers["x-distill-route"] == "teacher"
        assert killed.json()["choices"][0]["message"]["content"]
        time.sleep(2.5)  # the proxy's probe notices the student is gone
        later = chat(proxy.v1, "hi")
        assert later.headers["x-distill-route"] == "teacher"
        assert later.headers["x-distill-reason"] in (
            "student_down",
            "student_not_ready",
            "student_error",
        )
        revived = start_fake("student", logs, port=port)
        deadline = time.monotonic() + 10
        route = ""
        while time.monotonic() < deadline and route != "student":
            time.sleep(0.3)
            route = chat(proxy.v1, "hi").headers["x-distill-route"]
        assert route == "student"
    finally:
        stop_all(proxy, revived, student)
