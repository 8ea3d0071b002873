"""The KD loss and its collator on small hand-made tensors (no model, no training)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from trainer.kd import KDDataCollator, kept_positions, mixed_loss  # noqa: E402

NEG = -1e4


def soft(
    positions: list[list[int]], ids: list[list[list[int]]], logprobs: list[list[list[float]]]
) -> dict[str, torch.Tensor]:
    return {
        "kd_positions": torch.tensor(positions),
        "kd_ids": torch.tensor(ids),
        "kd_logprobs": torch.tensor(logprobs),
    }


def no_soft(batch: int) -> dict[str, torch.Tensor]:
    return soft([[-1]] * batch, [[[0]]] * batch, [[[-math.inf]]] * batch)


def test_kept_positions_are_those_predicting_a_label() -> None:
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, -100]])
    assert kept_positions(labels).tolist() == [0, 1, 2]


def test_alpha_zero_is_plain_cross_entropy() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([[-100, -100, 3, 1], [-100, 2, 4, -100]])
    keep = kept_positions(labels)
    logits = torch.randn(2, keep.numel(), 6)
    parts = mixed_loss(logits, labels, keep, no_soft(2), alpha=0.0, temperature=1.0)
    expected = F.cross_entropy(
        logits.reshape(-1, 6), labels[:, keep + 1].reshape(-1), ignore_index=-100, reduction="sum"
    )
    assert torch.isclose(parts.total, expected)
    assert parts.kd_positions == 0 and parts.label_tokens == 4


def test_kd_is_zero_when_student_matches_teacher_candidates() -> None:
    labels = torch.tensor([[-100, 1]])
    keep = kept_positions(labels)  # position 0 predicts token 1
    logits = torch.full((1, 1, 5), NEG)
    logits[0, 0, 1], logits[0, 0, 2] = math.log(0.7), math.log(0.3)
    targets = soft([[1]], [[[1, 2]]], [[[math.log(0.7), math.log(0.3)]]])
    parts = mixed_loss(logits, labels, keep, targets, alpha=1.0, temperature=1.0)
    assert parts.kd_positions == 1
    assert abs(float(parts.kd)) < 1e-5
    assert abs(float(parts.total)) < 1e-5  # alpha=1: CE fully replaced on this position


def test_kd_value_temperature_and_mixing() -> None:
    labels = torch.tensor([[-100, 1, 2]])
    keep = kept_positions(labels)
    logits = torch.tensor([[[0.0, 2.0, 1.0, 0.0], [0.0, 0.0, 3.0, 0.0]]])
    teacher = [math.log(0.5), math.log(0.5)]
    targets = soft([[1]], [[[1, 2]]], [[teacher]])
    temperature, alpha = 2.0, 0.25
    parts = mixed_loss(logits, labels, keep, targets, alpha=alpha, temperature=temperature)
    student = F.log_softmax(logits[0, 0] / temperature, dim=-1)[[1, 2]]
    p_t = torch.softmax(torch.tensor(teacher) / temperature, dim=-1)
    kl = float((p_t * (p_t.log() - student)).sum()) * temperature**2
    ce = -F.log_softmax(logits[0], dim=-1)[[0, 1], [1, 2]]
    assert math.isclose(float(parts.kd), kl, rel_tol=1e-5)
    expected = (1 - alpha) * float(ce[0]) + alpha * kl + float(ce[1])
    assert math.isclose(float(parts.total), expected, rel_tol=1e-5)
    assert kl > 0


def test_padding_never_produces_nan_gradients() -> None:
    labels = torch.tensor([[-100, 1, 2], [-100, 3, -100]])
    keep = kept_positions(labels)
    logits = torch.randn(2, keep.numel(), 6, requires_grad=True)
    ninf = -math.inf
    targets = soft(
        [[1, 2], [-1, -1]],  # row 2 has no soft targets at all
        [[[1, 4], [2, 0]], [[0, 0], [0, 0]]],
        [[[-0.1, -2.0], [-0.2, ninf]], [[ninf, ninf], [ninf, ninf]]],
    )
    parts = mixed_loss(logits, labels, keep, targets, alpha=0.5, temperature=2.0)
    parts.total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert parts.kd_positions == 2


def test_collator_pads_soft_targets() -> None:
    collate = KDDataCollator(pad_token_id=0)
    batch = collate(
        [
            {
                "input_ids": [5, 6, 7, 8],
                "labels": [-100, -100, 7, 8],
                "kd_positions": [2, 3],
                "kd_ids": [[7, 9, 10], [8]],
                "kd_logprobs": [[-0.1, -2, -3], [-0.01]],
            },
            {
                "input_ids": [5, 6],
                "labels": [-100, 6],
                "kd_positions": [],
                "kd_ids": [],
                "kd_logprobs": [],
            },
        ]
    )
    assert batch["input_ids"].shape == (2, 4)
    assert batch["labels"][1].tolist() == [-100, 6, -100, -100]
    assert batch["kd_positions"].tolist() == [[2, 3], [-1, -1]]
    assert batch["kd_ids"].shape == (2, 2, 3)
    assert batch["kd_ids"][0, 1].tolist() == [8, 0, 0]
    assert torch.isinf(batch["kd_logprobs"][0, 1, 1:]).all()
    assert torch.isinf(batch["kd_logprobs"][1]).all()


def test_collator_without_soft_targets_is_trl_collator() -> None:
    batch = KDDataCollator(pad_token_id=0)([{"input_ids": [1, 2], "labels": [-100, 2]}])
    assert set(batch) == {"input_ids", "labels", "attention_mask"}


def test_gradient_checkpointing_turns_on_for_long_batches() -> None:
    from trainer.config import TrainConfig
    from trainer.sft import use_gradient_checkpointing

    assert not use_gradient_checkpointing(TrainConfig(batch_size=8), longest=80)
    assert use_gradient_checkpointing(TrainConfig(batch_size=8), longest=650)
    assert not use_gradient_checkpointing(TrainConfig(gradient_checkpointing=False), 5000)
    assert use_gradient_checkpointing(TrainConfig(gradient_checkpointing=True), 10)


def test_hard_only_batches_are_plain_cross_entropy() -> None:
    torch.manual_seed(1)
    labels = torch.tensor([[-100, 2, 3, -100], [-100, -100, 4, 5]])
    keep = kept_positions(labels)
    logits = torch.randn(2, keep.numel(), 7)
    parts = mixed_loss(logits, labels, keep, {}, alpha=0.5, temperature=2.0)
    expected = F.cross_entropy(
        logits.reshape(-1, 7), labels[:, keep + 1].reshape(-1), ignore_index=-100, reduction="sum"
    )
    assert torch.isclose(parts.total, expected)
    assert parts.kd_positions == 0 and parts.label_tokens == 4
