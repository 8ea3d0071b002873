"""Fixtures of the loop's fast tests: a proxy over a fake LoRA-capable vLLM and a labelling
teacher, whose training runs are done by `fake_trainer.py`."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ProxyHarness
from tests.loop.fake_stack import FakeTeacher, FakeVLLM, review

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")
LIVE = ("running", "evaluating")


def trainer_cmd(*extra: str) -> str:
    return shlex.join([sys.executable, str(FAKE_TRAINER), *extra])


class LoopHarness:
    """A running proxy plus its fakes, with helpers for the admin API and traffic."""

    def __init__(
        self, h: ProxyHarness, vllm: FakeVLLM, teacher: FakeTeacher, quality_file: Path
    ) -> None:
        self.h = h
        self.quality_file = quality_file
        self.vllm = vllm
        self.teacher = teacher
        self.http = httpx.Client(base_url=h.url, timeout=30)

    @property
    def app(self) -> Any:
        return self.h.app

    @property
    def active(self) -> Any:
        return self.h.app.state.active

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def chat(self, i: int, good: bool, **extra: Any) -> httpx.Response:
        body = {"model": "student-base", "messages": review(i, good), "temperature": 0, **extra}
        resp = self.http.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200, resp.text
        return resp

    def traffic(self, n: int, start: int = 0) -> list[httpx.Response]:
        return [self.chat(i, good=i % 2 == 0) for i in range(start, start + n)]

    def set_quality(self, quality: str) -> None:
        """What the fake trainer's next adapters answer: good, bad or none."""
        self.quality_file.write_text(quality)

    def start_run(self, **body: Any) -> str:
        resp = self.admin("POST", "/admin/runs", json=body)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        resp = self.admin("GET", f"/admin/runs/{run_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def wait_run(self, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] not in LIVE:
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} still {run['status']} after {timeout} s")

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError("condition not met in time")


LoopFactory = Callable[..., AbstractContextManager[LoopHarness]]


@pytest.fixture
def loop_proxy(make_proxy: Callable[..., Any], tmp_path: Path) -> Iterator[LoopFactory]:
    """`with loop_proxy(vllm=..., trainer=[...], **settings) as lh:`; the same tmp dir (DB,
    runs) is reused by every proxy of a test, so a second one is a restart."""

    @contextmanager
    def factory(
        vllm: FakeVLLM | None = None,
        teacher: FakeTeacher | None = None,
        trainer: tuple[str, ...] = (),
        **overrides: Any,
    ) -> Iterator[LoopHarness]:
        vllm = vllm or FakeVLLM()
        teacher = teacher or FakeTeacher()
        quality_file = tmp_path / "fake-quality.txt"
        overrides.setdefault(
            "trainer_command", trainer_cmd("--quality-file", str(quality_file), *trainer)
        )
        with make_proxy(student=vllm, teacher=teacher, **overrides) as h:
            lh = LoopHarness(h, vllm, teacher, quality_file)
            try:
                yield lh
            finally:
                lh.http.close()

    yield factory
