"""Fitting the vote student on real Banking77 rows: `trainer.run` on a snapshot of
teacher-labelled requests, its encoder the real all-MiniLM-L6-v2 (embedded with transformers
behind the encoder's HTTP API), then the saved index voted on held-out queries. Also the
embedding cache: a second run embeds only the new rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bench.banking77.data import build_messages, load_categories, load_split, traffic_order
from bench.closed_set.embed import embed_texts
from proxy.settings import Settings
from proxy.student.encoder import resolve_encoder_model
from tests.trainer.trainer_rows import SnapshotWriter, build_row
from trainer.config import TrainConfig
from trainer.encoder import Encoder
from trainer.run import VOTE_DIR, run_distillation
from trainer.vote import VoteIndex

pytestmark = pytest.mark.train


class TransformersEncoder(Encoder):
    """The encoder's /v1/embeddings contract, answered by the real model in-process."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__("http://encoder.test/v1", "minilm")
        object.__setattr__(self, "model_dir", model_dir)
        object.__setattr__(self, "calls", [])

    def embed(self, texts: Any, client: httpx.Client | None = None) -> np.ndarray:
        self.calls.append(len(texts))  # type: ignore[attr-defined]
        return embed_texts(self.model_dir, list(texts))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resolve_encoder_model(Settings(data_dir=tmp_path_factory.mktemp("data")))


def _rows(examples: list[Any], labels: list[str], start: int) -> list[dict[str, Any]]:
    rows = []
    for i, ex in enumerate(examples, start):
        system, user = build_messages(ex.text, labels)
        rows.append(
            build_row(i, question=user["content"], answer=ex.label, system=system["content"])
        )
    return rows


def test_a_vote_run_on_real_rows(
    tmp_path: Path, snapshot: SnapshotWriter, encoder_dir: Path
) -> None:
    labels = load_categories()
    split = load_split()
    traffic = traffic_order(split.train)
    encoder = TransformersEncoder(encoder_dir)
    cfg = TrainConfig(min_rows=50)
    runs = tmp_path / "runs"

    first = snapshot(_rows(traffic[:500], labels, 0))
    report = run_distillation(first, runs / "r1", cfg, "unused-base", encoder=encoder)
    assert report["student_kind"] == "vote" and report["vote"]["embedded"] == report["vote"]["rows"]
    assert len(report["dataset"]["closed_set"]) > 60
    # The index holds the training and calibration splits; the eval split stays the gate's.
    dataset = report["dataset"]
    assert dataset["calibration_rows"] > 0 and dataset["eval_rows"] > 0
    assert report["vote"]["rows"] == dataset["train_rows"] + dataset["calibration_rows"]
    index = VoteIndex.load(runs / "r1" / VOTE_DIR)
    held_out = list(split.validation)[:300]
    votes = index.vote_many(embed_texts(encoder_dir, [e.text for e in held_out]))
    accuracy = np.mean([v.label == e.label for v, e in zip(votes, held_out, strict=True)])
    assert accuracy >= 0.6, accuracy  # ~0.70 measured offline at 500 rows
    # Leave-one-out over the training rows estimates the held-out agreement (calibration
    # pairs as if every row were held out).
    assert (runs / "r1" / VOTE_DIR / "loo_pairs.json").is_file()
    assert abs(report["vote"]["loo_agreement"] - accuracy) < 0.1
    confident = [v.label == e.label for v, e in zip(votes, held_out, strict=True) if v.share > 0.9]
    assert np.mean(confident) > accuracy  # the vote share ranks the answers

    # A second round on more rows embeds only what it has not seen (the cache by prompt hash).
    second = snapshot(_rows(traffic[:700], labels, 0))
    report2 = run_distillation(second, runs / "r2", cfg, "unused-base", encoder=encoder)
    assert 0 < report2["vote"]["embedded"] < 250
    assert report2["vote"]["rows"] > report["vote"]["rows"]
    assert json.loads((runs / "r2" / "report.json").read_text())["student_kind"] == "vote"
    assert not (runs / "r2" / "adapter").exists()  # no LoRA was trained
