"""Mixed traffic: several tasks' queries in given proportions, shuffled with a seed.

Each task contributes the head of its own (already seeded) traffic order, in that order
whatever the mix: the seeded shuffle is of the slots (which task comes next), not of the
queries. Counts follow the shares exactly (largest remainder), so 4,000 requests at
40/25/25/10 % are 1,600/1,000/1,000/400.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace

from bench.harness.examples import Example


def allocate(n: int, shares: Mapping[str, float]) -> dict[str, int]:
    """`n` split by `shares` (normalised), rounding by largest remainder (ties: name order)."""
    if n < 0 or not shares or any(v < 0 for v in shares.values()):
        raise ValueError("need n >= 0 and non-negative shares")
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("the shares add up to nothing")
    exact = {name: n * v / total for name, v in shares.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    left = n - sum(counts.values())
    for name in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k))[:left]:
        counts[name] += 1
    return counts


def mixed_traffic(
    pools: Mapping[str, Sequence[Example]],
    shares: Mapping[str, float],
    n: int,
    seed: int,
) -> list[tuple[int, Example]]:
    """`n` requests drawn from each task's pool by `shares`, each tagged with its task.

    A pool shorter than its count is cycled (a repeated query, as apps see them) rather
    than letting the proportions drift.
    """
    counts = allocate(n, shares)
    slots = [name for name, count in counts.items() for _ in range(count)]
    random.Random(seed).shuffle(slots)
    taken = dict.fromkeys(counts, 0)
    out: list[tuple[int, Example]] = []
    for index, name in enumerate(slots):
        pool = pools[name]
        if not pool:
            raise ValueError(f"task {name!r} has no traffic examples")
        out.append((index, replace(pool[taken[name] % len(pool)], task=name)))
        taken[name] += 1
    return out
