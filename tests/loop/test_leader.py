"""The election loop's transitions, with a scripted lock (no database)."""

from __future__ import annotations

import asyncio

from proxy.loop.leader import LeaderLoop, SoloLeadership


class ScriptedLock:
    """try_acquire/still_held answer from a script; `is_leader` like the real one."""

    def __init__(self, acquire: list[bool], held: list[bool]) -> None:
        self.acquire, self.held = acquire, held
        self.is_leader = False
        self.released = False

    def try_acquire(self) -> bool:
        self.is_leader = self.acquire.pop(0)
        return self.is_leader

    def still_held(self) -> bool:
        self.is_leader = self.held.pop(0)
        return self.is_leader

    def release(self) -> None:
        self.released = True


def _loop(lock: object, events: list[str]) -> LeaderLoop:
    async def hook(name: str) -> None:
        events.append(name)

    return LeaderLoop(
        lock,  # type: ignore[arg-type]
        0.01,
        on_elected=lambda: hook("elected"),
        on_lost=lambda: hook("lost"),
        follow=lambda: hook("follow"),
    )


def test_follow_then_lead_then_step_down_then_lead_again() -> None:
    events: list[str] = []
    lock = ScriptedLock(acquire=[False, False, True, True], held=[True, False])
    leader = _loop(lock, events)

    async def scenario() -> None:
        for _ in range(6):
            await leader._step()

    asyncio.run(scenario())
    assert events == ["follow", "follow", "elected", "lost", "elected"]
    assert leader.is_leader


def test_a_solo_process_leads_before_it_serves_and_runs_no_election_task() -> None:
    events: list[str] = []
    leader = _loop(SoloLeadership(), events)

    async def scenario() -> None:
        await leader.start()
        assert leader._task is None
        await leader.stop()

    asyncio.run(scenario())
    assert events == ["elected"] and leader.is_leader
