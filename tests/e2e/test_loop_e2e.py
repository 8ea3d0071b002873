"""The continuous loop on the real stack: the session's vLLM (CPU), the real trainer
(`python -m trainer.run`, TRL + PEFT) in a subprocess, a fake teacher that labels reviews.

Traffic at cold start (calibration mode: the uncalibrated base model serves nothing), a
triggered run, promotion through vLLM's runtime LoRA API, then the same kind of traffic
falls back to the teacher less; a rollback restores the base model; a killed run leaves the
promoted student serving. Kept small (tens of rows, 2 short epochs): CI has 2 cores.
(Lives here for the session `real_vllm` fixture; owned with proxy/loop.)
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_session import RealVLLM

from proxy.app import Transports, create_app
from proxy.settings import Settings
from tests.loop.fake_stack import FakeTeacher
from tests.server_thread import running

# A real training run plus vLLM evaluations: minutes on 2 busy cores, beyond the default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

SYSTEM = "Classify the sentiment of the movie review. Answer with one word: positive or negative."
POSITIVE = ("great", "wonderful", "moving", "brilliant", "delightful", "superb", "charming")
NEGATIVE = ("boring", "awful", "dull", "terrible", "tedious", "dreadful", "bland")
THINGS = ("film", "movie", "story", "acting", "plot", "ending", "soundtrack", "cast")
RUN_TIMEOUT_S = 1200.0


def label(body: dict[str, Any]) -> str:
    text = str(body["messages"][-1]["content"])
    return "positive" if any(w in text for w in POSITIVE) else "negative"


def review(i: int) -> list[dict[str, str]]:
    rng = random.Random(i)
    word = rng.choice(POSITIVE if i % 2 == 0 else NEGATIVE)
    text = f"Review #{i}: the {rng.choice(THINGS)} was {word}, {rng.choice(THINGS)} aside."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


@pytest.fixture
def proxy(real_vllm: RealVLLM, tmp_path: Path) -> Iterator[tuple[httpx.Client, Any]]:
    settings = Settings(
        student_url=real_vllm.base_url, student_model=real_vllm.model_name,
        student_base_model=str(real_vllm.model_dir), student_timeout=120,
        teacher_url="http://teacher.test/v1", teacher_api_key="sk-e2e-teacher",
        db=tmp_path / "distill.duckdb", data_dir=tmp_path / "data", log_flush_interval=0.1,
        target_agreement=0.7, calibration_min_pairs=10, shadow_rate=0.0,
        train_min_rows=20, train_epochs=2, train_lr=1e-3, train_eval_fraction=0.25,
        train_timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    app = create_app(settings, Transports(teacher=FakeTeacher(label=label).transport()))
    with running(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        deadline = time.monotonic() + 60
        while not app.state.pool.available() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield client, app


def _traffic(client: httpx.Client, ids: range) -> list[httpx.Response]:
    out = []
    for i in ids:
        resp = client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": review(i), "temperature": 0, "max_tokens": 8},
        )
        assert resp.status_code == 200, resp.text
        out.append(resp)
    return out


def _wait_logged(app: Any, n: int, timeout: float = 300.0) -> None:
    """Cold-start rows are logged once the student's (slower) answer is in too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.state.writer.flush()
        row = app.state.writer.read(lambda c: c.execute("SELECT count(*) FROM requests").fetchone())
        if row[0] >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} requests logged after {timeout} s")


def _fallback_rate(responses: list[httpx.Response]) -> float:
    return sum(r.headers["x-distill-route"] == "teacher" for r in responses) / len(responses)


def _wait_run(client: httpx.Client, run_id: str, timeout: float = RUN_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/admin/runs/{run_id}").json()
        if run["status"] not in ("running", "evaluating"):
            return run
        time.sleep(1.0)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s: {run}")


def test_loop_promotes_lowers_fallbacks_rolls_back_and_survives_a_killed_run(
    proxy: tuple[httpx.Client, Any], record_numbers: Any
) -> None:
    client, app = proxy
    before = _traffic(client, range(60))
    assert {r.headers["x-distill-reason"] for r in before} == {"uncalibrated"}
    fallback_before = _fallback_rate(before)
    _wait_logged(app, len(before))

    started = time.monotonic()
    resp = client.post("/admin/runs")
    assert resp.status_code == 202, resp.text
    run = _wait_run(client, resp.json()["id"])
    run_seconds = time.monotonic() - started
    assert run["status"] == "promoted", run["reason"]
    metrics = run["metrics_json"]
    assert metrics["candidate"]["agreement"] > metrics["incumbent"]["agreement"]
    current = app.state.active.current
    assert current.version == run["id"] and current.closed_set == ("negative", "positive")
    assert current.threshold is not None, metrics["calibration"]

    after = _traffic(client, range(1000, 1040))
    fallback_after = _fallback_rate(after)
    served = [r for r in after if r.headers["x-distill-route"] == "student"]
    right = sum(
        r.json()["choices"][0]["message"]["content"] == label({"messages": review(i)})
        for i, r in zip(range(1000, 1040), after, strict=True)
        if r.headers["x-distill-route"] == "student"
    )
    record_numbers(
        {
            "loop_fallback_rate_before": fallback_before,
            "loop_fallback_rate_after": fallback_after,
            "loop_calibrated_threshold": current.threshold,
            "loop_run_seconds": run_seconds,
            "loop_served_agreement": right / len(served) if served else 0.0,
        }
    )
    assert fallback_after < fallback_before
    assert served and right / len(served) >= 0.7

    rolled = client.post("/admin/rollback").json()
    assert rolled["current"]["version"] == "base"
    assert _traffic(client, range(2000, 2001))[0].headers["x-distill-student-version"] == "base"
    assert client.post("/admin/rollback").json()["current"]["version"] == run["id"]

    killed = client.post("/admin/runs").json()["id"]
    deadline = time.monotonic() + 60
    while not (pid := client.get(f"/admin/runs/{killed}").json().get("pid")):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    assert _wait_run(client, killed, 60)["status"] == "failed"
    last = _traffic(client, range(3000, 3005))
    assert {r.headers["x-distill-student-version"] for r in last} == {run["id"]}
    assert any(r.headers["x-distill-route"] == "student" for r in last)
