"""Real TRL + PEFT training of a tiny random Llama on the CPU (the `train` tier).

Run with ``flock /tmp/heavy.lock pytest -m train tests/trainer``. Each test stays under a
minute on 2 cores: a few dozen rows, a few dozen steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.trainer_rows import build_row, write_snapshot
from trainer.config import TrainConfig
from trainer.dataset import select_dataset

pytestmark = pytest.mark.train

LABELS = ["yes", "no", "maybe"]


def fast_cfg(**kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        min_rows=10,
        min_eval_rows=2,
        eval_fraction=0.2,
        epochs=3.0,
        lr=3e-2,
        batch_size=8,
        closed_set_max=0,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def ok_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A task whose teacher always says "ok": the untrained tiny model never does."""
    rows = [build_row(i, question=f"What is item {i}?", answer="ok") for i in range(40)]
    return write_snapshot(tmp_path_factory.mktemp("ok") / "snapshot.parquet", rows)


@pytest.fixture(scope="module")
def first_run(
    ok_snapshot: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    from trainer.run import run_distillation

    run_dir = tmp_path_factory.mktemp("runs") / "20250101-000000-abcd"
    report = run_distillation(ok_snapshot, run_dir, fast_cfg(), tiny_model_dir)
    return run_dir, report


def test_run_trains_saves_and_reports(first_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, report = first_run
    assert json.loads((run_dir / "report.json").read_text()) == json.loads(json.dumps(report))
    training = report["training"]
    assert training["loss_last"] < 0.5 * training["loss_first"]
    assert training["steps"] == len(training["loss_curve"]) >= 10
    assert not training["kd_active"] and not training["warm_started"]
    assert report["run_id"] == "20250101-000000-abcd"
    # The adapter is a PEFT adapter (what vLLM loads), with the proxy's metadata.
    adapter = run_dir / "adapter"
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    lora = json.loads((adapter / "adapter_config.json").read_text())
    assert lora["peft_type"] == "LORA" and lora["r"] == 8
    # "all-linear": every projection of every layer, never lm_head.
    suffixes = {m.rsplit(".", 1)[-1] for m in lora["target_modules"]}
    assert suffixes == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    meta = json.loads((adapter / "distill_adapter.json").read_text())
    assert meta["run_id"] == report["run_id"] and meta["closed_set"] is None
    # Manifest, progress and log.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["train"]) == report["dataset"]["train_rows"]
    assert {e["id"] for e in manifest["eval"]}.isdisjoint({e["id"] for e in manifest["train"]})
    assert json.loads((run_dir / "progress.json").read_text())["phase"] == "done"
    log = (run_dir / "train.log").read_text()
    assert "step 1/" in log and "agreement with the teacher" in log
    assert set(report["durations"]) == {"select", "train", "evaluate", "total"}


def test_adapter_changes_the_answers(first_run: tuple[Path, dict[str, Any]]) -> None:
    evaluation = first_run[1]["evaluation"]
    candidate, base = evaluation["candidate"], evaluation["base"]
    assert evaluation["incumbent"] is None
    assert candidate["metric"] == "exact_match" and candidate["n"] == evaluation["eval_rows"]
    assert candidate["agreement"] >= 0.9 > 0.1 >= base["agreement"]
    assert candidate["mean_confidence"]["mean_logprob"] > base["mean_confidence"]["mean_logprob"]
    for scorer in ("mean_logprob", "min_prob", "mean_entropy", "sequence_prob"):
        assert candidate["calibration"][scorer] and candidate["coverage"][scorer]
    assert candidate["backend"].startswith("hf:") and "adapter=" in candidate["backend"]


def test_warm_start_continues_the_incumbent(
    first_run: tuple[Path, dict[str, Any]],
    ok_snapshot: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    from trainer.run import run_distillation

    incumbent = first_run[0] / "adapter"
    report = run_distillation(
        ok_snapshot,
        tmp_path / "run2",
        fast_cfg(warm_start=True, epochs=1.0),
        tiny_model_dir,
        incumbent,
    )
    assert report["training"]["warm_started"]
    # Warm: already good at step 1 (a fresh LoRA starts at the base model's loss).
    assert report["training"]["loss_first"] < 0.5 * first_run[1]["training"]["loss_first"]
    assert report["evaluation"]["incumbent"]["agreement"] >= 0.9
    assert report["incumbent_adapter"] == str(incumbent)


def test_soft_labels_add_the_kd_term(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from trainer.sft import train_adapter

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    rows = []
    for i in range(24):
        answer = LABELS[i % 3]
        content = []
        for token_id in tok.encode(answer, add_special_tokens=False):
            token = tok.decode([token_id])
            top = [{"token": token, "logprob": -0.3}, {"token": "perhaps", "logprob": -1.5}]
            content.append({"token": token, "logprob": -0.3, "top_logprobs": top})
        rows.append(
            build_row(
                i, question=f"q {i}?", answer=answer, teacher_logprobs_json=json.dumps(content)
            )
        )
    snapshot = write_snapshot(tmp_path / "s.parquet", rows)
    # Forced gradient checkpointing: the KD forward must work with recomputed activations.
    cfg = fast_cfg(kd_alpha=0.5, kd_temperature=2.0, epochs=2.0, gradient_checkpointing=True)
    selection = select_dataset(snapshot, cfg)
    result = train_adapter(selection, tiny_model_dir, tmp_path / "run", cfg)
    assert result.kd_active
    stats = result.soft_labels.to_dict()
    assert stats["rows_with_logprobs"] == len(selection.train)
    # Every label is one student token here, so every teacher position lines up.
    assert stats["positions_used"] == len(selection.train) and stats["positions_skipped"] == 0
    kd_curve = [e["kd_loss"] for e in result.loss_curve if "kd_loss" in e]
    assert len(kd_curve) == len(result.loss_curve) and kd_curve[-1] < kd_curve[0]
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_hf_backend_closed_set_answers_only_labels(tiny_model_dir: Path) -> None:
    from trainer.backends import HFBackend
    from trainer.confidence import sequence_prob

    backend = HFBackend(tiny_model_dir, batch_size=2)
    conversations = [[{"role": "user", "content": q}] for q in ("a?", "bb?", "a much longer q?")]
    out = backend.generate(conversations, 8, 3, LABELS)
    for gen in out:
        assert gen.text in LABELS and gen.finish_reason == "stop"
        assert "".join(t["token"] for t in gen.logprobs) == gen.text
        assert all(len(t["top_logprobs"]) == 3 for t in gen.logprobs)
        assert 0 < sequence_prob(gen.logprobs) <= 1
    plain = backend.generate(conversations[:1], 4, 0, None)[0]
    assert plain.finish_reason in ("stop", "length") and len(plain.logprobs) <= 4
