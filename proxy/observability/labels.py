"""Keeping Prometheus label values bounded: no request ids, prompts or free text.

Every label value goes through one of these normalisers; anything unexpected becomes
``other``, so a bug or a new upstream error type can never blow up the number of
series.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

OTHER = "other"
ROUTES = frozenset({"student", "teacher", "passthrough", "none"})
REASONS = frozenset(
    {
        "confident",
        "low_confidence",
        "student_truncated",
        "forced",
        "student_error",
        "student_timeout",
        "student_down",
        "student_not_ready",
        "uncalibrated",
        "no_teacher",
        "invalid_structured_output",
        "not_distilled",
        "task_excluded",
        "task_too_little_traffic",
        "refused",
        "error",
    }
)
UNSUPPORTED_FEATURES = frozenset({"tools", "functions", "images", "audio"})
UPSTREAMS = frozenset({"student", "teacher"})
SCORERS = frozenset({"mean_logprob", "min_prob", "mean_entropy", "sequence_prob"})
DEGRADED = frozenset({"teacher-unavailable", "no-teacher"})

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_UNSAFE = re.compile(r"[^a-z0-9_:]+")


def route(value: object) -> str:
    return value if isinstance(value, str) and value in ROUTES else OTHER


def reason(value: object) -> str:
    if not isinstance(value, str):
        return OTHER
    if value in REASONS:
        return value
    kind, _, feature = value.partition(":")
    if kind == "unsupported":
        return f"unsupported:{feature if feature in UNSUPPORTED_FEATURES else OTHER}"
    return OTHER


def one_of(value: object, allowed: frozenset[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


def status_class(code: object) -> str:
    if not isinstance(code, int):
        return OTHER
    if code == 499:
        return "499"  # the client went away: not the proxy's fault, so kept apart from 4xx
    return f"{code // 100}xx" if 100 <= code < 600 else OTHER


def task_name(value: str) -> str:
    """A task name as it is (already a checked slug, `proxy.tasks.identity`), bounded in length."""
    return value[:64]


def snake(value: str) -> str:
    """``UpstreamTimeout`` -> ``upstream_timeout``; anything else reduced to [a-z0-9_:]."""
    return _UNSAFE.sub("_", _CAMEL.sub("_", value).lower()).strip("_")[:48] or OTHER


class BoundedValues:
    """Admits the first `limit` distinct values of an open-ended label, then ``other``.

    For labels whose values come from code (exception class names, run statuses) rather
    than a fixed list: bounded even if that code changes.
    """

    def __init__(self, limit: int = 16, normalise: Callable[[str], str] = snake) -> None:
        self._limit = limit
        self._normalise = normalise
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = self._normalise(value) if isinstance(value, str) and value else OTHER
        with self._lock:
            if text in self._seen:
                return text
            if len(self._seen) < self._limit:
                self._seen.add(text)
                return text
        return OTHER
