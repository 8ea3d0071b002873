"""Shadow sampling: a fraction of student-served requests also goes to the teacher,
in the background, within an hourly budget, so the agreement estimate above the
threshold stays honest and the pairs become training data."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable


class ShadowSampler:
    def __init__(
        self,
        rate: float,
        budget_per_hour: int,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.budget_per_hour = budget_per_hour
        self._rng = rng or random.Random()
        self._clock = clock
        self._sent: deque[float] = deque()

    def take(self, rate: float | None = None) -> bool:
        """True when this request should be shadowed (and counts it against the budget);
        `rate` overrides the sampler's own (the serving student's kind sets it)."""
        rate = self.rate if rate is None else rate
        if rate <= 0 or self.budget_per_hour <= 0:
            return False
        if self._rng.random() >= rate:
            return False
        now = self._clock()
        while self._sent and now - self._sent[0] > 3600:
            self._sent.popleft()
        if len(self._sent) >= self.budget_per_hour:
            return False
        self._sent.append(now)
        return True
