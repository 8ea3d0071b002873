"""Fitting the span student of a span-shaped extraction task (`trainer/spans.py`): the
training queries' token states from the encoder's vLLM, their BIO tags from the teacher's
answers, an MLP tagger trained with torch (seconds on a CPU), the label vote stored beside.

Calibration evidence, as for the vote student: every stored row answered by a student fitted
without it (`span_folds` folds by prompt hash), judged against its teacher answer, written
as the run's ``loo_pairs.json``. The eval split stays out: the gate measures candidate and
incumbent on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.agreement import AGREE_MIN_SCORE, agreement
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection, TrainRow
from trainer.encoder import Encoder, mean_pool
from trainer.spans import (
    OUTSIDE,
    SpanMeta,
    SpanShape,
    SpanStudent,
    Tagger,
    bio_tags,
    features,
    load_tokenizer,
    locate,
    offsets,
    parse_answer,
)
from trainer.vote import LOO_FILE, VoteIndex, query_text

log = logging.getLogger("trainer.spans")

BATCH = 256
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-2
DROPOUT = 0.2


@dataclass
class Example:
    row: TrainRow
    text: str
    answer: dict[str, Any]
    states: np.ndarray
    token_offsets: list[tuple[int, int]]
    tags: list[str | None] | None
    """None when a span value is not in the query (the row still votes for its label)."""
    feats: np.ndarray | None
    """The tagger's input per token (tagged rows only): computed once, read by every fold."""


def prepare(
    rows: Sequence[TrainRow], shape: SpanShape, encoder: Encoder, tokenizer: Any
) -> list[Example]:
    """The rows with a query and an answer of the task's shape, embedded and tagged."""
    items = []
    for row in rows:
        text, answer = query_text(row.messages), parse_answer(row.completion)
        if text and answer is not None and isinstance(answer.get(shape.spans_key), dict):
            items.append((row, text, answer))
    states = encoder.token_states([text for _, text, _ in items])
    out = []
    for (row, text, answer), state in zip(items, states, strict=True):
        token_offsets = offsets(tokenizer, text)
        if len(token_offsets) != len(state):
            continue
        located = locate(text, {str(k): str(v) for k, v in answer[shape.spans_key].items()})
        tags = bio_tags(located, token_offsets) if located is not None else None
        feats = features(state, text, token_offsets) if tags is not None else None
        out.append(Example(row, text, answer, state, token_offsets, tags, feats))
    return out


def _train_mlp(examples: Sequence[Example], tags: Sequence[str], cfg: TrainConfig) -> Tagger:
    import torch

    index = {t: i for i, t in enumerate(tags)}
    xs, ys = [], []
    for ex in examples:
        if ex.tags is None or ex.feats is None:
            continue
        for k, tag in enumerate(ex.tags):
            if tag is not None:
                xs.append(ex.feats[k])
                ys.append(index[tag])
    x, y = torch.tensor(np.stack(xs)), torch.tensor(ys)
    torch.manual_seed(cfg.seed)
    first = torch.nn.Linear(x.shape[1], cfg.span_hidden)
    last = torch.nn.Linear(cfg.span_hidden, len(tags))
    net = torch.nn.Sequential(first, torch.nn.ReLU(), torch.nn.Dropout(DROPOUT), last)
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    for _ in range(cfg.span_epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), BATCH):
            batch = order[start : start + BATCH]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    weights = {
        "w1": first.weight.detach().numpy().T.copy(), "b1": first.bias.detach().numpy().copy(),
        "w2": last.weight.detach().numpy().T.copy(), "b2": last.bias.detach().numpy().copy(),
    }  # fmt: skip
    return Tagger(weights, tags)


def _student(
    examples: Sequence[Example], shape: SpanShape, cfg: TrainConfig, encoder: str,
    tokenizer: Any, tags: Sequence[str],
) -> SpanStudent:  # fmt: skip
    labels = sorted({str(ex.answer.get(shape.label_key)) for ex in examples})
    allowed: dict[str, set[str]] = {label: set() for label in labels}
    for ex in examples:
        allowed[str(ex.answer.get(shape.label_key))].update(map(str, ex.answer[shape.spans_key]))
    vote = VoteIndex.fit(
        mean_pool([ex.states for ex in examples]),
        [str(ex.answer.get(shape.label_key)) for ex in examples], labels,
        k=cfg.vote_k, power=cfg.vote_power, encoder=encoder, prior=cfg.vote_prior,
        head_weight=cfg.vote_head_weight,
    )  # fmt: skip
    meta = SpanMeta(shape, tuple(tags), {k: tuple(sorted(v)) for k, v in allowed.items()})
    return SpanStudent(vote, _train_mlp(examples, tags, cfg), meta, tokenizer)


def _out_of_fold_pairs(
    examples: Sequence[Example], shape: SpanShape, cfg: TrainConfig, encoder: str,
    tokenizer: Any, tags: Sequence[str],
) -> list[dict[str, Any]]:  # fmt: skip
    folds = [int(ex.row.prompt_hash[-6:], 16) % cfg.span_folds for ex in examples]
    pairs = []
    for fold in range(cfg.span_folds):
        rest = [ex for ex, f in zip(examples, folds, strict=True) if f != fold]
        held = [ex for ex, f in zip(examples, folds, strict=True) if f == fold]
        if not held or not any(ex.tags for ex in rest):
            continue
        student = _student(rest, shape, cfg, encoder, tokenizer, tags)
        for ex in held:
            answer = student.answer(ex.text, ex.states)
            if answer is not None:
                agree = agreement(answer.text, ex.row.completion)[0] >= AGREE_MIN_SCORE
                pairs.append({"confidence": answer.confidence, "agree": agree})
    return pairs


def fit_spans(
    selection: DatasetSelection, shape: SpanShape, cfg: TrainConfig, encoder: Encoder,
    out_dir: Path,
) -> dict[str, object]:  # fmt: skip
    """Writes the span student to `out_dir`; returns what the report says about the fit."""
    if encoder.tokenizer is None:
        raise ValueError("the span student needs the encoder's tokenizer.json")
    t0 = time.monotonic()
    tokenizer = load_tokenizer(Path(encoder.tokenizer))
    examples = prepare([*selection.train, *selection.calibration], shape, encoder, tokenizer)
    tagged = [ex for ex in examples if ex.tags is not None]
    if not tagged:
        raise ValueError("no training row's spans could be found in its query")
    tags = [OUTSIDE, *sorted({t for ex in tagged for t in ex.tags or () if t and t != OUTSIDE})]
    student = _student(examples, shape, cfg, encoder.model, tokenizer, tags)
    out_dir.mkdir(parents=True, exist_ok=True)
    student.save(out_dir, Path(encoder.tokenizer))
    pairs = _out_of_fold_pairs(examples, shape, cfg, encoder.model, tokenizer, tags)
    (out_dir / LOO_FILE).write_text(json.dumps({"pairs": pairs}))
    seconds = time.monotonic() - t0
    log.info(
        "span student: %d rows (%d tagged), %d tags, %d out-of-fold pairs, in %.1f s",
        len(examples), len(tagged), len(tags), len(pairs), seconds,
    )  # fmt: skip
    return {
        "kind": "spans",
        "rows": len(examples),
        "tagged_rows": len(tagged),
        "tags": len(tags),
        "encoder": encoder.model,
        "fit_seconds": round(seconds, 3),
        "loo_agreement": round(sum(p["agree"] for p in pairs) / len(pairs), 4) if pairs else None,
    }
