"""The drop-in tier: real client libraries against the real app over HTTP, the teacher
being `FakeTeacher` (every endpoint an app calls) and the student a `FakeUpstream`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import TEACHER_KEY, ProxyHarness
from tests.dropin.fake_teacher import FakeTeacher
from tests.fakes import FakeUpstream

__all__ = ["TEACHER_KEY"]


@pytest.fixture
def dropin(make_proxy: Callable[..., Any]) -> Callable[..., Any]:
    """`with dropin(student_text=..., student_logprob=..., **settings) as h:`"""

    @contextmanager
    def factory(
        student_text: str = "Paris",
        student_logprob: float = -0.05,
        teacher_text: str = "The capital is Paris.",
        **settings: Any,
    ) -> Iterator[ProxyHarness]:
        student = FakeUpstream(default_text=student_text, logprob=student_logprob)
        teacher = FakeTeacher(default_text=teacher_text)
        with make_proxy(student=student, teacher=teacher, **settings) as h:
            yield h

    return factory
