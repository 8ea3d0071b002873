"""The generative LoRA student as a second opinion for the closed-set vote student (issue 21):
does serving "when both agree" admit more traffic at the same precision than the vote alone?

    python -m bench.closed_set.second_opinion [--rows all|lora-train] [--scorer sequence_prob]

For each promoted round of the committed LoRA run (`../banking77/results/2026-12-01-lora-3000req/`)
the vote (`trainer/vote.py`, the product's k and weighting) is fitted on that round's N teacher
answers, the way `compare.py` fits it: the first N queries of the benchmark's traffic order,
labelled by the replay teacher. `--rows lora-train` keeps only the rows the LoRA itself trained
on (the trainer's prompt-hash split leaves 25% out for eval and calibration). Both students are
then judged on the run's 300 validation queries: coverage at 95% precision against gold and at
the calibration target (0.8 agreement with the teacher), thresholds chosen on those same
queries (an oracle threshold, as in the benchmark's report), with a paired bootstrap of each
rule's gain over the vote alone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.banking77.data import build_messages, load_categories, load_split, traffic_order
from bench.closed_set.compare import DEFAULT_MODEL
from bench.closed_set.embed import cached_embeddings
from bench.harness.examples import round_robin
from bench.harness.label_oracle import ReplayOracle
from bench.harness.rounds import VALIDATION_INDEX_BASE
from proxy.logstore.hashing import prompt_hash
from trainer.config import TrainConfig
from trainer.dataset import split_of
from trainer.vote import VoteIndex

LORA_RUN = Path(__file__).resolve().parents[1] / "banking77/results/2026-12-01-lora-3000req"
VOTE, LORA = "vote alone", "LoRA alone"
AGREE, EITHER = "both agree, by vote share", "vote share >= t, or both agree"
RULES = (VOTE, LORA, AGREE, EITHER)
TARGETS = (("gold", 0.95), ("teacher", 0.8))  # what a served answer is checked against, at
EPS = 1e-9


@dataclass(frozen=True)
class Opinions:
    """Both students' answers on the same queries ("" where an answer is not a label)."""

    vote: np.ndarray
    share: np.ndarray
    lora: np.ndarray
    lora_score: np.ndarray

    def take(self, idx: np.ndarray) -> Opinions:
        return Opinions(self.vote[idx], self.share[idx], self.lora[idx], self.lora_score[idx])


# --- the combination rules -----------------------------------------------------------------
def coverage_among(
    correct: np.ndarray, confidence: np.ndarray, eligible: np.ndarray, precision: float
) -> float:
    """Largest share of all queries a threshold on `confidence` serves from the `eligible`
    ones at >= `precision`. A threshold serves a whole tie group or none of it (the vote's
    share is 1.0 for many queries), unlike compare.py's `coverage_at`."""
    idx = np.flatnonzero(eligible)
    if not len(idx):
        return 0.0
    order = idx[np.argsort(-confidence[idx], kind="stable")]
    conf = confidence[order]
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    cut = np.append(conf[1:] < conf[:-1], True)
    ok = np.flatnonzero((hits >= precision * n - EPS) & cut)
    return float(n[ok[-1]] / len(correct)) if len(ok) else 0.0


def coverage_either(
    correct: np.ndarray, share: np.ndarray, agree: np.ndarray, precision: float
) -> float:
    """Largest share served by "share >= t, or both agree" at >= `precision`: every agreeing
    query is served, the others most confident first, down to the loosest t that holds."""
    rest = np.flatnonzero(~agree)
    order = rest[np.argsort(-share[rest], kind="stable")]
    conf = share[order]
    hits = correct[agree].sum() + np.concatenate([[0], np.cumsum(correct[order])])
    n = agree.sum() + np.arange(len(order) + 1)
    cut = np.concatenate([[True], conf[1:] < conf[:-1], [True]]) if len(order) else np.ones(1, bool)
    ok = np.flatnonzero((hits >= precision * n - EPS) & cut & (n > 0))
    return float(n[ok[-1]] / len(correct)) if len(ok) else 0.0


def coverages(op: Opinions, truth: np.ndarray, precision: float) -> dict[str, float]:
    """Each rule's coverage at `precision` against `truth` (gold, or the teacher's answers)."""
    agree = op.vote == op.lora
    every = np.ones(len(truth), dtype=bool)
    vote_ok = op.vote == truth
    return {
        VOTE: coverage_among(vote_ok, op.share, every, precision),
        LORA: coverage_among(op.lora == truth, op.lora_score, every, precision),
        AGREE: coverage_among(vote_ok, op.share, agree, precision),
        EITHER: coverage_either(vote_ok, op.share, agree, precision),
    }


def loosest(op: Opinions, truth: np.ndarray) -> dict[str, tuple[float, float]]:
    """(share answered, precision) of each rule at its loosest: everything, or every
    agreeing query for "both agree"."""
    agree = op.vote == op.lora
    vote_acc = float(np.mean(op.vote == truth))
    both = float(np.mean(op.vote[agree] == truth[agree])) if agree.any() else 0.0
    return {
        VOTE: (1.0, vote_acc),
        LORA: (1.0, float(np.mean(op.lora == truth))),
        AGREE: (float(agree.mean()), both),
        EITHER: (1.0, vote_acc),
    }


def bootstrap_gain(
    op: Opinions, truth: np.ndarray, precision: float, reps: int, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Paired bootstrap over the queries: the 2.5th and 97.5th percentiles of each rule's
    coverage minus the vote's, thresholds chosen again on every resample."""
    rng = np.random.default_rng(seed)
    gains: dict[str, list[float]] = {rule: [] for rule in RULES}
    for _ in range(reps):
        idx = rng.integers(0, len(truth), len(truth))
        cov = coverages(op.take(idx), truth[idx], precision)
        for rule in RULES:
            gains[rule].append(cov[rule] - cov[VOTE])
    return {
        r: (float(np.percentile(g, 2.5)), float(np.percentile(g, 97.5))) for r, g in gains.items()
    }


# --- the LoRA run, and the checks that it saw the traffic compare.py assumes ---------------
@dataclass(frozen=True)
class LoraRound:
    round: int
    teacher_answers: int
    """Teacher answers logged before the round's run: the N the vote is fitted on (the first
    N of the traffic, as every request went to the teacher before the first calibration)."""
    train_rows: int
    run_seconds: float
    """The run's training plus evaluation, as the benchmark timed it."""
    answers: np.ndarray
    scores: dict[str, np.ndarray]
    split: dict[str, float]
    """The run's eval and calibration fractions (its training rows are the rest)."""


def load_run(path: Path) -> dict[str, Any]:
    with gzip.open(path / "raw.json.gz", "rt") as fh:
        raw: dict[str, Any] = json.load(fh)
    return raw


def lora_rounds(raw: dict[str, Any], n_validation: int) -> list[LoraRound]:
    """Rounds whose run was promoted (a failed run leaves the previous adapter serving)."""
    out, teacher = [], 0
    for seg in raw["segments"]:
        teacher += sum(r["route"] == "teacher" for r in seg["records"])
        run = seg.get("run") or {}
        if run.get("status") != "promoted" or "validation" not in seg:
            continue
        answers = np.full(n_validation, "", dtype=object)
        scores: dict[str, np.ndarray] = {}
        for rec in seg["validation"]["records"]:
            i = rec["index"] - VALIDATION_INDEX_BASE
            answers[i] = rec["predicted"] or ""
            for name, value in (rec.get("scores") or {}).items():
                scores.setdefault(name, np.full(n_validation, -np.inf))[i] = value
        config = run["raw"].get("config_json") or {}
        config = json.loads(config) if isinstance(config, str) else config  # a row or its text
        split = {k: config[k] for k in ("eval_fraction", "calibration_fraction") if k in config}
        out.append(LoraRound(
            int(seg["round"]), teacher, raw["run_reports"][run["id"]]["train_rows"],
            float(seg["training_seconds"]), answers.astype(str), scores, split,
        ))  # fmt: skip
    return out


def check_traffic(
    raw: dict[str, Any], traffic: Sequence[Any], teacher: Sequence[str], validation: Sequence[Any]
) -> dict[str, int]:
    """Counts of where the run's records differ from compare.py's traffic order and teacher
    labels (all zero when the run saw the traffic and teacher the vote is fitted on here)."""
    out = {"traffic_rows": 0, "not_in_order": 0, "gold_differs": 0, "teacher_differs": 0,
           "validation_gold_differs": 0}  # fmt: skip
    expected = 0
    for seg in raw["segments"]:
        for rec in sorted(seg["records"], key=lambda r: r["index"]):
            out["traffic_rows"] += 1
            out["not_in_order"] += rec["index"] != expected
            expected = rec["index"] + 1
            out["gold_differs"] += rec["gold"] != traffic[rec["index"]].label
            if rec["route"] == "teacher" and rec["index"] < len(teacher):
                out["teacher_differs"] += rec["predicted"] != teacher[rec["index"]]
        for rec in (seg.get("validation") or {}).get("records", []):
            gold = validation[rec["index"] - VALIDATION_INDEX_BASE].label
            out["validation_gold_differs"] += rec["gold"] != gold
    return out


def lora_train_mask(texts: Sequence[str], labels: list[str], split: dict[str, float]) -> np.ndarray:
    """The trainer's own split (a pure function of the prompt hash): True where the LoRA
    trained on the query, False where its run held it out for eval or calibration."""
    known = {f.name for f in fields(TrainConfig)}
    overrides: dict[str, Any] = {k: v for k, v in split.items() if k in known}
    cfg = replace(TrainConfig(), **overrides)
    hashes = (prompt_hash(build_messages(text, labels)) for text in texts)
    return np.array([split_of(h, cfg) == "train" for h in hashes])


# --- per round: fit, judge, render ---------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """What every round reads: embeddings, the teacher's labels, the validation truths."""

    labels: list[str]
    x_traffic: np.ndarray
    teacher: list[str]
    x_val: np.ndarray
    truths: dict[str, np.ndarray]
    lora_train: np.ndarray | None
    """Per traffic query, whether the LoRA trained on it (`--rows lora-train`), else None."""


def judge_round(s: Setup, rnd: LoraRound, scorer: str, reps: int) -> dict[str, Any]:
    cfg = TrainConfig()
    rows = np.arange(rnd.teacher_answers)
    if s.lora_train is not None:
        rows = rows[s.lora_train[: rnd.teacher_answers]]
    t0 = time.perf_counter()
    index = VoteIndex.fit(
        s.x_traffic[rows], [s.teacher[i] for i in rows], s.labels, k=cfg.vote_k,
        power=cfg.vote_power, encoder="minilm",
    )  # fmt: skip
    fit_s = time.perf_counter() - t0
    votes = index.vote_many(s.x_val)
    op = Opinions(
        np.array([v.label for v in votes]), np.array([v.share for v in votes]),
        rnd.answers, rnd.scores[scorer],
    )  # fmt: skip
    out: dict[str, Any] = {"round": rnd, "vote_rows": len(rows), "fit_s": fit_s}
    for truth, precision in TARGETS:
        out[truth] = {
            "loosest": loosest(op, s.truths[truth]),
            "coverage": coverages(op, s.truths[truth], precision),
            "gain": bootstrap_gain(op, s.truths[truth], precision, reps),
        }
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render(results: Sequence[dict[str, Any]], scorer: str) -> list[str]:
    head = ("| round | teacher answers (trained on: vote / LoRA) | rule | answered | right "
            "(gold) | coverage at 95% gold, gain over the vote [95% CI] | coverage at 0.8 "
            "teacher agreement, gain [95% CI] |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|---|"]
    for res in results:
        rnd: LoraRound = res["round"]
        for i, rule in enumerate(RULES):
            answered, right = res["gold"]["loosest"][rule]
            cells = []
            for truth, _ in TARGETS:
                cov, (lo, hi) = res[truth]["coverage"][rule], res[truth]["gain"][rule]
                gain = cov - res[truth]["coverage"][VOTE]
                cells.append(
                    _pct(cov)
                    if rule == VOTE
                    else f"{_pct(cov)}, {100 * gain:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                )
            name = f"LoRA alone (`{scorer}`)" if rule == LORA else rule
            first = f"{rnd.round} | {rnd.teacher_answers} ({res['vote_rows']} / {rnd.train_rows})"
            lines.append(f"| {first if i == 0 else ' | '} | {name} | {_pct(answered)} | "
                         f"{_pct(right)} | {cells[0]} | {cells[1]} |")  # fmt: skip
    lines += ["", "| round | LoRA run (train + eval) | vote fit |", "|---|---|---|"]
    for res in results:
        rnd = res["round"]
        lines.append(f"| {rnd.round} | {rnd.run_seconds / 60:.1f} min | {res['fit_s']:.3f} s |")
    return lines


def setup(
    model_dir: Path, raw: dict[str, Any], rounds: Sequence[LoraRound], rows: str
) -> tuple[Setup, dict[str, int]]:
    labels = load_categories()
    split = load_split()
    oracle = ReplayOracle([*split.train, *split.validation], labels, accuracy=0.92)
    traffic = traffic_order(split.train)[: sum(len(seg["records"]) for seg in raw["segments"])]
    validation = round_robin(split.validation, raw["settings"]["val_limit"])
    # compare.py's text lists, so its cache serves both; the run's 300 are picked from them.
    x_traffic, _ = cached_embeddings(model_dir, [e.text for e in traffic])
    x_all_val, _ = cached_embeddings(model_dir, [e.text for e in split.validation])
    position = {e.text: i for i, e in enumerate(split.validation)}
    x_val = x_all_val[[position[e.text] for e in validation]]
    teacher = [oracle.decide(e.text).label for e in traffic]
    truths = {
        "gold": np.array([e.label for e in validation]),
        "teacher": np.array([oracle.decide(e.text).label for e in validation]),
    }
    checks = check_traffic(raw, traffic, teacher, validation)
    mask = lora_train_mask([e.text for e in traffic], labels, rounds[0].split)
    for rnd in rounds:
        checks[f"round {rnd.round}: train rows by the hash split"] = int(
            mask[: rnd.teacher_answers].sum()
        )
    s = Setup(labels, x_traffic, teacher, x_val, truths, mask if rows == "lora-train" else None)
    return s, checks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.closed_set.second_opinion")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--run", type=Path, default=LORA_RUN, help="a LoRA run's results folder")
    p.add_argument("--rows", choices=("all", "lora-train"), default="all")
    p.add_argument("--scorer", default="sequence_prob", help="the LoRA answer's confidence")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for the intervals")
    args = p.parse_args(argv)
    raw = load_run(args.run)
    rounds = lora_rounds(raw, raw["settings"]["val_limit"])
    s, checks = setup(args.model_dir, raw, rounds, args.rows)
    results = [judge_round(s, rnd, args.scorer, args.bootstrap) for rnd in rounds]
    print("\n".join(render(results, args.scorer)))
    print("\nchecks:", json.dumps(checks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
