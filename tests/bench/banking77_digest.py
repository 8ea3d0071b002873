"""Digests of what the Banking77 benchmark sends and what its replay teacher answers.

`test_banking77_unchanged` compares them with the values computed on the code before the
harness refactor (the same functions, run against that commit's `bench.banking77`, where
the oracle was `bench.banking77.oracle`), so a change to the traffic order, the prompts,
the stream mix or the teacher's answers fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from bench.banking77.data import (
    Example,
    build_messages,
    load_categories,
    load_examples,
    load_split,
    traffic_order,
)
from bench.banking77.replay_teacher import ReplayTeacher, TeacherConfig
from bench.banking77.tokens import SimpleTokenizer
from bench.harness.label_oracle import ReplayOracle

SEED = 77
REQUESTS = 3000


def _sha(items: list[Any]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
        h.update(b"\n")
    return h.hexdigest()


def traffic_digest(
    request_of: Callable[[Example], dict[str, Any]], stream_of: Callable[[int], bool]
) -> str:
    split = load_split(seed=SEED)
    traffic = list(enumerate(traffic_order(split.train, SEED)[:REQUESTS]))
    rows = [
        {
            "index": i,
            "text": ex.text,
            "label": ex.label,
            "stream": stream_of(i),
            "request": request_of(ex),
        }
        for i, ex in traffic
    ]
    rows += [{"validation": ex.text, "label": ex.label} for ex in split.validation]
    return _sha(rows)


def teacher_digest() -> str:
    labels = load_categories()
    teacher = ReplayTeacher(
        TeacherConfig(latency_ms=0.0),
        ReplayOracle(load_examples(), labels, 0.92, 0),
        SimpleTokenizer(),
    )
    split = load_split(seed=SEED)
    queries = [ex.text for ex in traffic_order(split.train, SEED)[:REQUESTS]]
    queries += [ex.text for ex in split.validation] + ["an unseen query about my card"]
    rows = []
    for i, query in enumerate(queries):
        body: dict[str, Any] = {"model": "m", "messages": build_messages(query, labels)}
        if i % 2 == 0:
            body.update(logprobs=True, top_logprobs=5)
        if i % 7 == 0:
            body["n"] = 2
        completion, _ = teacher.complete(body)
        rows.append(
            {
                "prompt_tokens": completion.prompt_tokens,
                "choices": [
                    {"tokens": c.tokens, "logprobs": c.logprobs, "finish": c.finish_reason}
                    for c in completion.choices
                ],
            }
        )
    return _sha(rows)
