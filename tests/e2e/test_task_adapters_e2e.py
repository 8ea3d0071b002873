"""Two tasks through one proxy on the real stack: the session's vLLM (CPU), the real trainer
(TRL + PEFT) once per task, a fake teacher that answers each task by its system prompt.

Each task gets its own run, LoRA adapter and calibrated threshold (on its own pairs, against
its own quality target); vLLM holds both adapters side by side and the proxy routes each
request to its task's adapter. Kept small (tens of rows, 3 short epochs): CI has 2 cores.
"""

from __future__ import annotations

import random
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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

ROWS = 64
RUN_TIMEOUT_S = 1200.0
TASKS: dict[str, dict[str, Any]] = {
    "sentiment": {
        "system": "Classify the review's sentiment. Answer with one word: positive or negative.",
        "labels": {
            "positive": ("great", "wonderful", "brilliant", "delightful", "superb"),
            "negative": ("boring", "awful", "dull", "terrible", "tedious"),
        },
        "target": 0.6,
    },
    "sport": {
        "system": "Which sport is the sentence about? Answer with one word: football or tennis.",
        "labels": {
            "football": ("goalkeeper", "striker", "penalty kick", "offside", "corner kick"),
            "tennis": ("racket", "backhand", "deuce", "tie-break", "baseline volley"),
        },
        "target": 0.65,
    },
}


def _task_of(body: dict[str, Any]) -> str:
    system = str(body["messages"][0]["content"])
    return next(name for name, t in TASKS.items() if t["system"] == system)


def label(body: dict[str, Any]) -> str:
    """The teacher's answer: the label whose cue word the user message holds."""
    text = str(body["messages"][-1]["content"])
    labels: dict[str, tuple[str, ...]] = TASKS[_task_of(body)]["labels"]
    return next((name for name, cues in labels.items() if any(c in text for c in cues)), "?")


def messages(task: str, i: int) -> list[dict[str, str]]:
    rng = random.Random(f"{task}-{i}")
    spec = TASKS[task]
    name = sorted(spec["labels"])[i % 2]
    cue = rng.choice(spec["labels"][name])
    text = f"Item #{i}: the {cue} part, {rng.choice(('honestly', 'really', 'again'))}."
    return [{"role": "system", "content": spec["system"]}, {"role": "user", "content": text}]


@pytest.fixture
def proxy(real_vllm: RealVLLM, tmp_path: Path) -> Iterator[tuple[httpx.Client, Any]]:
    settings = Settings(
        student_url=real_vllm.base_url, student_model=real_vllm.model_name,
        student_base_model=str(real_vllm.model_dir), student_timeout=120,
        teacher_url="http://teacher.test/v1", teacher_api_key="sk-e2e-teacher",
        db=tmp_path / "distill.duckdb", data_dir=tmp_path / "data", log_flush_interval=0.1,
        loop_scope="task", target_agreement=TASKS["sentiment"]["target"],
        calibration_min_pairs=10, shadow_rate=0.0,
        tasks={"sport": {"quality_target": TASKS["sport"]["target"]}},
        train_min_rows=20, train_epochs=3, train_lr=1e-3, train_eval_fraction=0.2,
        train_calibration_fraction=0.35,
        train_timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    app = create_app(settings, Transports(teacher=FakeTeacher(label=label).transport()))
    with running(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        deadline = time.monotonic() + 60
        while not app.state.pool.available() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield client, app


def _traffic(client: httpx.Client, task: str, ids: range) -> list[httpx.Response]:
    out = []
    for i in ids:
        resp = client.post(
            "/v1/chat/completions",
            headers={"x-distill-task": task},
            json={"model": "app", "messages": messages(task, i), "temperature": 0, "max_tokens": 8},
        )
        assert resp.status_code == 200, resp.text
        out.append(resp)
    return out


def _wait_logged(app: Any, task: str, n: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.state.writer.flush()
        row = app.state.writer.read(
            lambda c: c.execute("SELECT count(*) FROM requests WHERE task = ?", [task]).fetchone()
        )
        if row[0] >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} {task} requests logged after {timeout} s")


def _train(client: httpx.Client, task: str) -> dict[str, Any]:
    resp = client.post("/admin/runs", json={"task": task})
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = client.get(f"/admin/runs/{run_id}").json()
        if run["status"] not in ("running", "evaluating"):
            assert run["status"] == "promoted", run["reason"]
            assert run["task"] == task
            return dict(run)
        time.sleep(1.0)
    raise AssertionError(f"run {run_id} of {task} did not finish in {RUN_TIMEOUT_S} s")


def test_two_tasks_two_adapters_side_by_side_each_with_its_own_threshold(
    proxy: tuple[httpx.Client, Any], real_vllm: RealVLLM, record_numbers: Any
) -> None:
    client, app = proxy
    for task in TASKS:
        cold = _traffic(client, task, range(ROWS))
        assert {r.headers["x-distill-route"] for r in cold} == {"teacher"}
        _wait_logged(app, task, ROWS)
    runs = {task: _train(client, task) for task in TASKS}

    # vLLM holds both adapters at once: the second promotion did not unload the first.
    served = httpx.get(f"{real_vllm.base_url}/models", timeout=30, trust_env=False).json()
    adapters = {f"distill-{run['id']}" for run in runs.values()}
    assert adapters <= {m["id"] for m in served["data"]}
    listed = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert adapters <= listed

    slots = app.state.active.tasks()
    tasks = {t["task"]: t for t in client.get("/admin/tasks").json()["tasks"]}
    numbers: dict[str, float] = {}
    for task, run in runs.items():
        calibration = run["metrics_json"]["calibration"]
        # Calibrated on its own task's pairs only (both tasks' would be about twice as many),
        # against its own quality target.
        assert 0 < calibration["pairs"] <= ROWS
        assert calibration["target"] == TASKS[task]["target"]
        current = slots[task].current
        assert current.version == run["id"] and current.threshold is not None, calibration
        serving = tasks[task]["serving"]
        assert serving["version"] == run["id"] and serving["own_version"] is True
        assert serving["threshold"] == current.threshold

        after = _traffic(client, task, range(1000, 1030))
        assert {r.headers["x-distill-student-version"] for r in after} == {run["id"]}
        by_student = [
            (i, r)
            for i, r in zip(range(1000, 1030), after, strict=True)
            if r.headers["x-distill-route"] == "student"
        ]
        right = sum(
            r.json()["choices"][0]["message"]["content"] == label({"messages": messages(task, i)})
            for i, r in by_student
        )
        assert by_student, f"{task}: its adapter served nothing (threshold {current.threshold})"
        assert right / len(by_student) >= TASKS[task]["target"]
        numbers[f"tasks_{task}_threshold"] = current.threshold
        numbers[f"tasks_{task}_student_share"] = len(by_student) / len(after)
        numbers[f"tasks_{task}_served_agreement"] = right / len(by_student)
    record_numbers(numbers)
