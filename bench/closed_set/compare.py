"""Closed-set students side by side, offline: accuracy alone, coverage at 95% precision
and fit time after N teacher answers (Banking77, the benchmark's own split and replay
teacher).

    python -m bench.closed_set.compare [--sizes 500,1000,1500,3000] [--out FILE.md]

The training rows are the first N queries of the benchmark's traffic order, labelled by
the replay teacher (92% right, plausible confusions); scores are against the gold labels
of the benchmark's validation split. Students: the vote index (`trainer/vote.py`, the one
the proxy serves) at several k and weightings, and a softmax head on the same embeddings.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.banking77.data import load_categories, load_split, traffic_order
from bench.closed_set.embed import cached_embeddings
from bench.harness.label_oracle import ReplayOracle
from trainer.vote import VoteIndex

DEFAULT_MODEL = Path("data/models/all-MiniLM-L6-v2")
Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def coverage_at(correct: np.ndarray, confidence: np.ndarray, precision: float) -> float:
    """Largest share of queries, most confident first, answered at >= `precision`."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    ok = np.nonzero(hits / n >= precision)[0]
    return float((ok[-1] + 1) / len(order)) if len(ok) else 0.0


def fit_vote(k: int, power: float) -> Callable[[np.ndarray, list[str], list[str]], Predict]:
    def fit(x: np.ndarray, y: list[str], labels: list[str]) -> Predict:
        index = VoteIndex.fit(x, y, labels, k=k, power=power, encoder="minilm")

        def predict(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            votes = index.vote_many(q)
            return np.array([v.label for v in votes]), np.array([v.share for v in votes])

        return predict

    return fit


def fit_softmax(x: np.ndarray, y: list[str], labels: list[str]) -> Predict:
    """Multinomial logistic regression, full-batch gradient descent with L2 (NumPy)."""
    pos = {label: i for i, label in enumerate(labels)}
    target = np.zeros((len(y), len(labels)), dtype=np.float32)
    target[np.arange(len(y)), [pos[a] for a in y]] = 1.0
    w = np.zeros((x.shape[1], len(labels)), dtype=np.float32)
    b = np.zeros(len(labels), dtype=np.float32)
    scale = 20.0  # unit vectors: a temperature so the logits can separate
    for _ in range(300):
        logits = scale * x @ w + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        grad = p - target
        w -= 0.5 * (scale * x.T @ grad / len(y) + 1e-4 * w)
        b -= 0.5 * grad.mean(0)

    def predict(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = scale * q @ w + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        return np.array(labels)[p.argmax(1)], p.max(1)

    return predict


STUDENTS: dict[str, Callable[[np.ndarray, list[str], list[str]], Predict]] = {
    "vote k=5 w=sim": fit_vote(5, 1.0),
    "vote k=10 w=sim": fit_vote(10, 1.0),
    "vote k=10 w=sim^4": fit_vote(10, 4.0),
    "vote k=20 w=sim^4": fit_vote(20, 4.0),
    "vote k=30 w=sim^8": fit_vote(30, 8.0),
    "softmax head": fit_softmax,
}


def compare(model_dir: Path, sizes: Sequence[int]) -> list[dict[str, object]]:
    labels = load_categories()
    split = load_split()
    oracle = ReplayOracle([*split.train, *split.validation], labels, accuracy=0.92)
    traffic = traffic_order(split.train)[: max(sizes)]
    x_all, embed_s = cached_embeddings(model_dir, [e.text for e in traffic])
    x_val, _ = cached_embeddings(model_dir, [e.text for e in split.validation])
    gold = np.array([e.label for e in split.validation])
    teacher = [oracle.decide(e.text).label for e in traffic]
    rows = []
    for n in sizes:
        for name, fit in STUDENTS.items():
            t0 = time.perf_counter()
            predict = fit(x_all[:n], teacher[:n], labels)
            fit_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            pred, conf = predict(x_val)
            per_query_ms = (time.perf_counter() - t1) * 1000 / len(gold)
            correct = (pred == gold).astype(np.float64)
            rows.append({
                "student": name, "n": n, "accuracy": float(correct.mean()),
                "coverage_95": coverage_at(correct, conf, 0.95),
                "coverage_90": coverage_at(correct, conf, 0.90),
                "fit_s": fit_s, "vote_ms": per_query_ms,
            })  # fmt: skip
    rows.append({"embed_seconds_uncached": embed_s, "validation": len(gold)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.closed_set.compare")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--sizes", default="500,1000,1500,3000")
    args = p.parse_args(argv)
    rows = compare(args.model_dir, [int(s) for s in args.sizes.split(",")])
    head = "| student | teacher answers | accuracy alone | coverage at 95% | at 90% | fit s |"
    print(head + " ms/query |")
    print("|---|---|---|---|---|---|---|")
    for r in rows[:-1]:
        print(f"| {r['student']} | {r['n']} | {r['accuracy']:.3f} | {r['coverage_95']:.3f} | "
              f"{r['coverage_90']:.3f} | {r['fit_s']:.2f} | {r['vote_ms']:.3f} |")  # fmt: skip
    print(rows[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
