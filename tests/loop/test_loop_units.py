"""Small pieces: the LoRA API client, schedule parsing, run artifacts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from proxy.loop.artifacts import ArtifactError, RunArtifacts, load_regression_set, request_body
from proxy.loop.lora import LoraAdmin, LoraError, root_of
from proxy.loop.process import describe_exit, spawn, terminate
from proxy.loop.scheduler import parse_schedule
from tests.loop.fake_stack import FakeVLLM


def _admin(vllm: FakeVLLM, urls: list[str]) -> tuple[LoraAdmin, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=vllm.transport())
    return LoraAdmin(client, lambda: urls), client


def _adapter(tmp_path: Path, quality: str = "good") -> Path:
    path = tmp_path / "adapter"
    path.mkdir(exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"fake_quality": quality}))
    return path


def test_root_of() -> None:
    assert root_of("http://h:8000/v1") == "http://h:8000"
    assert root_of("http://h:8000/v1/") == "http://h:8000"


def test_load_on_every_replica_is_idempotent_and_unload_is_best_effort(tmp_path: Path) -> None:
    vllm = FakeVLLM()
    admin, client = _admin(vllm, ["http://a/v1", "http://b/v1"])

    async def scenario() -> None:
        await admin.load("distill-1", _adapter(tmp_path))
        assert [body["lora_name"] for body in vllm.loads] == ["distill-1", "distill-1"]
        assert await admin.load_on("http://a/v1", "distill-1", _adapter(tmp_path)) is False
        await admin.unload("distill-1")
        await admin.unload("distill-1")  # 404: nothing to unload, no error
        await client.aclose()

    asyncio.run(scenario())
    assert vllm.unloads == ["distill-1"]


def test_load_errors_name_the_replica(tmp_path: Path) -> None:
    vllm = FakeVLLM()
    admin, client = _admin(vllm, ["http://a/v1"])

    async def scenario() -> None:
        try:
            with pytest.raises(LoraError, match=r"http://a/v1 refused adapter x \(HTTP 404\)"):
                await admin.load("x", tmp_path / "missing")
            with pytest.raises(LoraError, match="no student replica"):
                await LoraAdmin(client, lambda: []).load("x", tmp_path)
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_parse_schedule() -> None:
    assert isinstance(parse_schedule("30m"), IntervalTrigger)
    assert parse_schedule("6h").interval.total_seconds() == 6 * 3600  # type: ignore[attr-defined]
    assert isinstance(parse_schedule("0 3 * * *"), CronTrigger)
    with pytest.raises(ValueError, match="neither an interval"):
        parse_schedule("every night")
    with pytest.raises(ValueError, match="must be positive"):
        parse_schedule("0m")


def test_trainer_runs_below_the_servers_priority(tmp_path: Path) -> None:
    """The trainer's niceness is the server's plus train_nice: serving keeps priority."""

    async def go() -> tuple[int, int, int]:
        cmd = [sys.executable, "-c", "import time; time.sleep(30)"]
        niced = await spawn(cmd, tmp_path / "a.log", nice=7)
        plain = await spawn(cmd, tmp_path / "b.log")
        try:
            return (
                os.getpriority(os.PRIO_PROCESS, niced.pid),
                os.getpriority(os.PRIO_PROCESS, plain.pid),
                os.getpriority(os.PRIO_PROCESS, 0),
            )
        finally:
            await terminate(niced, grace=1.0)
            await terminate(plain, grace=1.0)

    niced, plain, own = asyncio.run(go())
    assert plain == own
    assert niced == min(19, own + 7)


def test_describe_exit() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "killed by SIGKILL"


def test_artifacts_read_the_trainer_report(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(
        json.dumps(
            {
                "closed_set": ["a", "b"],
                "prompt_prefix": {"text": "You label intents.", "pruned": True},
                "evaluation": {
                    "eval_rows": 3,
                    "candidate": {"n": 3, "agreement": 0.5, "calibration": {}, "backend": "hf"},
                },
            }
        )
    )
    art = RunArtifacts(tmp_path)
    assert art.closed_set() == ("a", "b")
    assert art.prompt_prefix() == "You label intents."
    assert art.trainer_summary() == {"candidate": {"n": 3, "agreement": 0.5, "backend": "hf"}}
    with pytest.raises(ArtifactError, match="no adapter"):
        art.check_adapter()
    with pytest.raises(ArtifactError, match="snapshot"):
        art.eval_rows()
    assert RunArtifacts(tmp_path / "empty").closed_set() is None


def test_eval_request_keeps_client_params_but_caps_length(tmp_path: Path) -> None:
    body = request_body(
        {
            "model": "m",
            "messages": [],
            "stream": True,
            "n": 3,
            "temperature": 0.2,
            "max_tokens": 999,
        },
        max_tokens=64,
    )
    assert body == {"model": "m", "messages": [], "temperature": 0.2, "max_tokens": 64}
    path = tmp_path / "reg.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}], "expected": "yo"}\n\n')
    rows = load_regression_set(path)
    assert len(rows) == 1 and rows[0].reference == "yo" and rows[0].body["max_tokens"] == 256
    path.write_text('{"messages": []}\n')
    with pytest.raises(ArtifactError, match="reg.jsonl:1"):
        load_regression_set(path)
