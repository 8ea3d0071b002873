"""Rebuilds the shipped subsets of CLINC150 and SNIPS from the full training files.

    python -m bench.tasks.datasets.build SHARED_DATASETS_DIR

Only the maintainer runs this (the benchmark reads the shipped files, never the source):
per CLINC150 intent a seeded sample of its training queries plus every out-of-scope query
of the training and validation files; per SNIPS intent a seeded sample of the queries
(each text once) whose slot names are distinct (a slot named twice has no place in a JSON
object).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 150
CLINC_PER_INTENT = 20
SNIPS_PER_INTENT = 250


def build_clinc(source: Path, out: Path) -> int:
    by_intent: dict[str, list[str]] = defaultdict(list)
    with (source / "train.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_intent[row["intent"]].append(row["text"])
    with (source / "validation.csv").open(newline="", encoding="utf-8") as fh:
        oos_val = [r["text"] for r in csv.DictReader(fh) if r["intent"] == "oos"]
    rng = random.Random(SEED)
    rows: list[tuple[str, str]] = []
    for intent in sorted(by_intent):
        texts = by_intent[intent]
        if intent == "oos":
            rows += [(t, intent) for t in texts + oos_val]
        else:
            rows += [(t, intent) for t in rng.sample(texts, CLINC_PER_INTENT)]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "queries.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "intent"])
        writer.writerows(rows)
    for name in ("intents.json", "domains.json"):
        shutil.copyfile(source / name, out / name)
    return len(rows)


def build_snips(source: Path, out: Path) -> int:
    by_intent: dict[str, list[dict[str, object]]] = defaultdict(list)
    seen: set[str] = set()
    with (source / "train.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            names = [name for name, _ in row["slots"]]
            text = row["text"].strip()
            if len(set(names)) == len(names) and text not in seen:  # and a text only once
                seen.add(text)
                by_intent[row["intent"]].append(row)
    rng = random.Random(SEED)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for intent in sorted(by_intent):
            for row in rng.sample(by_intent[intent], SNIPS_PER_INTENT):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    shutil.copyfile(source / "slots.json", out / "slots.json")
    return n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="the folder holding clinc150/ and snips/")
    args = p.parse_args(argv)
    print("clinc150", build_clinc(args.source / "clinc150", HERE / "clinc150"))
    print("snips", build_snips(args.source / "snips", HERE / "snips"))


if __name__ == "__main__":
    main()
