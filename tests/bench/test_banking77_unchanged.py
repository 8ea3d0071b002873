"""The harness refactor left the Banking77 benchmark's traffic and teacher as they were.

The digests below were computed with `banking77_digest` on the commit before the refactor
(768f2f4, the old `bench.banking77` modules): the first 3,000 traffic queries in order with
their labels, stream choice and SDK arguments, the validation split, and the replay
teacher's completions (tokens, logprobs, finish reasons, prompt tokens) for all of them.
"""

from __future__ import annotations

from bench.banking77.data import load_categories
from bench.banking77.driver import Driver, DriverConfig
from tests.bench.banking77_digest import SEED, teacher_digest, traffic_digest

TRAFFIC_BEFORE = "3ef761977ec94dfc2419cdd9a6daae5e950a5c99190c4907c8bfcdc9cc8f6d42"
TEACHER_BEFORE = "d1a404fdfa8e5fc73a85f734fa8b10575d24af36b718a6e09b35a32677de225b"


def test_traffic_order_and_requests_are_unchanged() -> None:
    driver = Driver(DriverConfig(base_url="http://127.0.0.1:9/v1", seed=SEED), load_categories())
    assert traffic_digest(driver.request, driver.is_stream) == TRAFFIC_BEFORE


def test_replay_teacher_answers_are_unchanged() -> None:
    assert teacher_digest() == TEACHER_BEFORE


def test_a_different_seed_changes_the_digest() -> None:
    # The digest is sensitive: the same code with another stream seed sends another mix.
    driver = Driver(DriverConfig(base_url="http://127.0.0.1:9/v1", seed=1), load_categories())
    assert traffic_digest(driver.request, driver.is_stream) != TRAFFIC_BEFORE
