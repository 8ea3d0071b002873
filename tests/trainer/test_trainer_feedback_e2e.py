"""Feedback end to end (the `train` tier): requests through the real app, users' corrections
through POST /v1/feedback, the server's snapshot, a real (tiny) distillation run, and the
run report's gold accuracies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.logstore.snapshot import export_snapshot
from tests.fakes import FakeUpstream
from trainer.config import TrainConfig
from trainer.dataset import split_of

pytestmark = pytest.mark.train


def test_corrections_reach_the_run_report(
    make_proxy: Callable[..., Any], tiny_model_dir: Path, tmp_path: Path
) -> None:
    from trainer.report import summary_lines
    from trainer.run import run_distillation

    cfg = TrainConfig(
        min_rows=10, min_eval_rows=2, eval_fraction=0.25, epochs=2.0, lr=3e-2, batch_size=8,
        closed_set_max=0, eval_base_max_rows=0,
    )  # fmt: skip
    with make_proxy(teacher=FakeUpstream(default_text="ok")) as h:
        for i in range(40):
            h.client().chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": f"What is item {i}?"}],
                extra_headers={"x-request-id": f"item-{i}", "x-distill-route": "teacher"},
            )
        rows = h.rows()
        held_out = [r["id"] for r in rows if split_of(r["prompt_hash"], cfg) == "eval"]
        assert len(held_out) >= 3
        # Users confirm the teacher on two held-out prompts and correct it on a third.
        for request_id, label in zip(held_out[:3], ["ok", "ok", "no"], strict=True):
            resp = httpx.post(
                f"{h.url}/v1/feedback", json={"request_id": request_id, "correction": label}
            )
            assert resp.status_code == 200
        trained = next(r["id"] for r in rows if split_of(r["prompt_hash"], cfg) == "train")
        resp = httpx.post(f"{h.url}/v1/feedback", json={"request_id": trained, "rating": "bad"})
        assert resp.status_code == 200
        h.flush()
        snapshot = export_snapshot(h.app.state.writer, tmp_path / "snapshot.parquet")

    run_dir = tmp_path / "runs" / "20250101-000000-feed"
    report = run_distillation(snapshot, run_dir, cfg, tiny_model_dir)
    feedback = report["dataset"]["feedback"]
    assert report["dataset"]["counts"]["rated_bad"] == 1
    assert (feedback["gold_rows"], feedback["gold_eval_rows"], feedback["corrected_rows"]) == (
        3, 3, 1,
    )  # fmt: skip
    assert feedback["teacher_gold_accuracy"]["accuracy"] == pytest.approx(2 / 3)
    gold = report["evaluation"]["candidate"]["gold"]
    assert gold["accuracy"]["n"] == 3 and gold["teacher_accuracy"]["n"] == 3
    assert 0.0 <= gold["accuracy"]["accuracy"] <= 1.0
    text = "\n".join(summary_lines(report, run_dir))
    assert "teacher accuracy on gold rows: 0.667" in text
    assert "candidate accuracy on gold eval rows:" in text
