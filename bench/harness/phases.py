"""The phases every learning benchmark runs: traffic straight to the teacher, and traffic
through a learning proxy (base student measured, then rounds until the traffic is sent)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.common.console import say
from bench.harness.admin import AdminClient
from bench.harness.driver import Driver
from bench.harness.examples import Example
from bench.harness.rounds import LoopConfig, learning_phase, teacher_spend_probe, validate
from bench.harness.stats import accuracy

TEACHER_CONCURRENCY = 32  # the replay teacher only sleeps: more at once just saves time

Traffic = Sequence[tuple[int, Example]]


async def all_teacher(driver: Driver, traffic: Traffic) -> dict[str, Any]:
    """Every request straight to the teacher (the quality and cost every arm is held to)."""
    try:
        records = [r.to_dict() for r in await driver.run(list(traffic), "teacher", 0)]
    finally:
        await driver.aclose()
    say(f"all-teacher baseline: {len(records)} requests, accuracy {accuracy(records)}")
    return {"records": records}


async def learn(
    raw: dict[str, Any],
    driver: Driver,
    admin: AdminClient,
    traffic: Traffic,
    validation: list[Example],
    loop: LoopConfig,
    teacher_root: str,
    checkpoint: Callable[[list[dict[str, Any]]], None],
) -> None:
    """The base student on validation (``raw["base_validation"]``), then the traffic in
    rounds (`learning_phase`, saved through `checkpoint`) and the proxy's final stats."""
    base = await validate(driver, validation, 0)
    raw["base_validation"] = {"records": [r.to_dict() for r in base]}
    say(
        f"base student alone on {len(base)} validation queries: "
        f"{accuracy(raw['base_validation']['records'])}"
    )
    await learning_phase(
        driver,
        admin,
        list(traffic),
        validation,
        loop,
        spend=lambda: teacher_spend_probe(teacher_root),
        checkpoint=checkpoint,
    )
    raw["proxy_stats"] = await admin.stats()
