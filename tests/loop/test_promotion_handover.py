"""A calibrated incumbent is not replaced by a candidate that cannot serve yet: swapping
would route everything to the teacher until the candidate's own pairs arrive."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from proxy.loop.calibration import Calibration
from proxy.loop.promotion import Outcome, Promoter
from proxy.serving.student_state import ActiveStudent, StudentVersion
from proxy.settings import Settings


class _Calibrator:
    enabled = True

    def __init__(self, threshold: float | None) -> None:
        self.threshold = threshold

    async def calibrate(self, version: StudentVersion) -> Calibration:
        status = "calibrated" if self.threshold is not None else "not_enough_pairs"
        return Calibration(status, self.threshold, 0.8, 0.95, "sequence_prob", pairs=12)


class _Store:
    def __init__(self) -> None:
        self.activated: list[str] = []

    async def get_version(self, name: str) -> None:
        return None

    async def save_version(self, row: Any) -> None:
        return None

    async def activate(self, name: str) -> None:
        self.activated.append(name)


def _promote(tmp_path: Path, incumbent_threshold: float | None, candidate: float | None) -> Any:
    incumbent = StudentVersion("vote-a", "a", threshold=incumbent_threshold, kind="vote")
    active = ActiveStudent(incumbent)
    store = _Store()
    promoter = Promoter(
        Settings(data_dir=tmp_path),
        active,
        None,
        None,
        store,
        _Calibrator(candidate),  # type: ignore[arg-type]
    )
    new = StudentVersion("vote-b", "b", kind="vote")
    artifacts = type("A", (), {"model_dir": tmp_path})()
    outcome = asyncio.run(promoter._promote(Outcome(True, "better", new), incumbent, artifacts))  # type: ignore[arg-type]
    return outcome, active, store


def test_an_uncalibrated_candidate_does_not_replace_a_serving_incumbent(tmp_path: Path) -> None:
    outcome, active, store = _promote(tmp_path, incumbent_threshold=0.6, candidate=None)
    assert not outcome.promoted and "kept the incumbent" in outcome.reason
    assert "not_enough_pairs" in outcome.reason
    assert active.current.name == "vote-a" and store.activated == []


def test_a_calibrated_candidate_or_a_silent_incumbent_is_swapped(tmp_path: Path) -> None:
    outcome, active, _ = _promote(tmp_path, incumbent_threshold=0.6, candidate=0.7)
    assert outcome.promoted and active.current.name == "vote-b"
    assert active.current.threshold == 0.7
    outcome, active, _ = _promote(tmp_path, incumbent_threshold=None, candidate=None)
    assert outcome.promoted and active.current.name == "vote-b"  # nothing served before either


def test_a_server_without_an_encoder_trains_closed_sets_with_lora(loop_proxy: Any) -> None:
    # The loop harness runs an external student and no DISTILL_ENCODER_URL: no vote student.
    with loop_proxy() as lh:
        assert lh.app.state.vote is None
        lh.traffic(10)
        run = lh.wait_run(lh.start_run())
        config = json.loads(
            (lh.app.state.settings.data_dir / "runs" / run["id"] / "config.json").read_text()
        )
        assert config["closed_set_student"] == "lora"
