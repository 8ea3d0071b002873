"""Embedded vLLM (supervised child): the promoted adapter is restored at start-up and
re-loaded by the supervisor's on_ready hook before a restarted vLLM takes traffic."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from proxy.logstore.writer import LogWriter
from proxy.loop.scheduler import start_loop, stop_loop
from proxy.loop.store import LoopStore, VersionRow, utcnow
from proxy.serving.student_state import ActiveStudent, StudentVersion
from proxy.settings import Settings
from proxy.upstream.breaker import CircuitBreaker
from proxy.upstream.students import StudentPool
from tests.loop.fake_stack import FakeVLLM


@dataclass
class SupervisorStub:
    url: str = "http://embedded.test/v1"
    model_name: str = "student-base"
    ready: bool = True
    on_ready: list[Any] = field(default_factory=list)


def _adapter(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"fake_quality": "good"}))
    return path


async def _scenario(tmp_path: Path, writer: LogWriter, vllm: FakeVLLM) -> None:
    settings = Settings(
        db=tmp_path / "distill.duckdb",
        data_dir=tmp_path / "data",
        teacher_url="http://teacher.test/v1",
    )
    store = LoopStore(writer)
    for name, run_id, active in (("student-base", None, False), ("distill-r1", "r1", True)):
        adapter = _adapter(tmp_path / name) if run_id else None
        await store.save_version(
            VersionRow(
                name,
                run_id,
                str(adapter) if adapter else None,
                utcnow(),
                active,
                None,
                None,
                ("a", "b"),
                None,
            )
        )
    http = httpx.AsyncClient(transport=vllm.transport())
    supervisor = SupervisorStub()
    state = SimpleNamespace(
        settings=settings,
        writer=writer,
        supervisor=supervisor,
        student_http=http,
        active=ActiveStudent(StudentVersion(name="student-base")),
        pool=StudentPool(http, breaker_factory=lambda: CircuitBreaker(3, 1.0)),
    )
    app = SimpleNamespace(state=state)
    await start_loop(app)
    try:
        current = state.active.current
        assert (current.name, current.version, current.closed_set) == (
            "distill-r1",
            "r1",
            ("a", "b"),
        )
        assert state.active.previous.version == "base"
        assert set(vllm.adapters) == {"distill-r1"}
        assert [body["lora_name"] for body in vllm.loads] == ["distill-r1"]
        vllm.restart()  # the child died; the supervisor started a new one
        await asyncio.gather(*(cb() for cb in supervisor.on_ready))
        assert set(vllm.adapters) == {"distill-r1"}
    finally:
        await stop_loop(app)
        await http.aclose()


def test_embedded_vllm_gets_the_active_adapter_back(tmp_path: Path) -> None:
    vllm = FakeVLLM()
    with LogWriter(tmp_path / "distill.duckdb", tmp_path / "spill") as writer:
        asyncio.run(_scenario(tmp_path, writer, vllm))
