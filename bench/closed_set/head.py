"""The vote with and without its linear head, as the loop uses them: calibrated on the
trainer's own evidence, then judged on traffic it has not seen (Banking77, CLINC150).

    python -m bench.closed_set.head [--seeds 3] [--weights 0,0.5]   # about 5 minutes

For each task and size N: the first N queries of a seeded shuffle of the task's traffic
split, labelled by its replay teacher (the mixed benchmark's: Banking77 92 %, CLINC150
90 % right, plausible confusions); the index fitted as the trainer fits it
(`VoteIndex.fit`), its calibration pairs as the trainer writes them (`loo_pairs`: leave one
out for the neighbours, out of fold for the head), the threshold as the proxy chooses it
(`choose_threshold`, target 0.8, level 0.95). Then the next 600 queries: the share the
threshold admits ("coverage", what the student would serve) and its agreement with the
teacher there, which the guarantee says is at least 0.8. For CLINC150, out-of-scope queries
the threshold admits with an intent are counted too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.closed_set.embed import cached_embeddings
from bench.harness.label_oracle import ReplayOracle
from bench.tasks import banking77, clinc150
from bench.tasks.labels import LabelTask
from proxy.loop.calibration import Pair, choose_threshold
from trainer.vote import VoteIndex

DEFAULT_MODEL = Path("data/models/all-MiniLM-L6-v2")
FUTURE = 600
SIZES = {"clinc150": (450, 750), "banking77": (500, 800, 1100)}
OOS = "oos"


def one(x: np.ndarray, teacher: list[str], gold: list[str], labels: list[str], n: int,
        weight: float) -> dict[str, Any]:  # fmt: skip
    t0 = time.perf_counter()
    index = VoteIndex.fit(
        x[:n], teacher[:n], labels, k=30, power=8.0, encoder="m", prior=0.02, head_weight=weight
    )
    loo = index.loo_pairs([str(i) for i in range(n)])
    seconds = time.perf_counter() - t0
    pairs = [Pair(p["confidence"], p["agree"]) for p in loo]
    cal = choose_threshold(pairs, target=0.8, min_pairs=30)
    future = slice(n, n + FUTURE)
    votes = index.vote_many(x[future])
    share = np.array([v.share for v in votes])
    said = np.array([v.label for v in votes])
    agree = said == np.array(teacher[future])
    served = share >= cal.threshold if cal.threshold is not None else np.zeros(len(share), bool)
    oos = np.array([g == OOS for g in gold[future]])
    return {
        "coverage": float(served.mean()),
        "agreement": float(agree[served].mean()) if served.any() else None,
        "oos": int(oos.sum()),
        "oos_served_as_intent": int((served & oos & (said != OOS)).sum()),
        "fit_and_pairs_s": seconds,
    }


def compare(
    task: LabelTask, model_dir: Path, seeds: int, weights: list[float]
) -> list[dict[str, Any]]:
    base = list(task.split(24).train)
    oracle = ReplayOracle(task.examples(), task.labels, task.default_accuracy or 1.0, 24)
    x_all, _ = cached_embeddings(model_dir, [ex.text for ex in base])
    teacher_all = [oracle.decide(ex.text).label for ex in base]
    labels = list(task.labels) + sorted(set(teacher_all) - set(task.labels))
    rows = []
    for n in SIZES[task.name]:
        for weight in weights:
            runs = []
            for seed in range(1, seeds + 1):
                order = np.random.default_rng(seed).permutation(len(base))
                teacher = [teacher_all[i] for i in order]
                gold = [base[i].label for i in order]
                runs.append(one(x_all[order], teacher, gold, labels, n, weight))
            agreements = [r["agreement"] for r in runs if r["agreement"] is not None]
            rows.append({
                "task": task.name, "n": n, "head_weight": weight,
                "coverage": float(np.mean([r["coverage"] for r in runs])),
                "agreement": float(np.mean(agreements)) if agreements else None,
                "oos_served_as_intent": sum(r["oos_served_as_intent"] for r in runs),
                "oos": sum(r["oos"] for r in runs),
                "seconds": float(np.mean([r["fit_and_pairs_s"] for r in runs])),
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.closed_set.head")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--seeds", type=int, default=3, help="shuffles averaged per cell")
    p.add_argument("--weights", default="0,0.5", help="head weights to compare")
    args = p.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    print("| task | teacher answers | head weight | coverage | agreement there | "
          "out-of-scope served as an intent | fit + pairs s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for task in (clinc150.task(), banking77.task()):
        for r in compare(task, args.model_dir, args.seeds, weights):
            agreement = "-" if r["agreement"] is None else f"{r['agreement']:.3f}"
            oos = f"{r['oos_served_as_intent']} of {r['oos']}" if r["oos"] else "-"
            print(f"| {r['task']} | {r['n']} | {r['head_weight']} | {r['coverage']:.3f} | "
                  f"{agreement} | {oos} | {r['seconds']:.1f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
