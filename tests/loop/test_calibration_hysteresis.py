"""Recalibration of a serving version: the hysteresis that keeps it from flapping."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from proxy.loop.calibration import Pair
from proxy.loop.calibrator import Calibrator, describe, save_eval_pairs
from proxy.serving.student_state import ActiveStudent, StudentVersion
from tests.conftest import base_settings


class _NoLoggedPairs:
    async def logged_pairs(self, version: str, scorer: str) -> list[Any]:
        return []


def _pairs() -> list[Pair]:
    # 200 pairs at ~86% agreement: the fixed-sequence walk fails at a 0.8 target (a bad
    # stretch among the most confident), and passes every threshold at 0.78.
    rnd = random.Random(16)
    return [Pair(1 - i / 1000, rnd.random() < 0.86) for i in range(200)]


def _calibrate(tmp_path: Path, threshold: float | None, **settings: Any) -> Any:
    s = base_settings(tmp_path, target_agreement=0.8, calibration_min_pairs=30, **settings)
    run_dir = s.data_dir / "runs" / "r1"
    run_dir.mkdir(parents=True)
    save_eval_pairs(run_dir, _pairs(), "calibration")
    version = StudentVersion(name="r1-adapter", version="r1", threshold=threshold)
    calibrator = Calibrator(s, _NoLoggedPairs(), ActiveStudent(version))  # type: ignore[arg-type]
    return asyncio.run(calibrator.calibrate(version))


def test_a_fresh_version_needs_the_target_itself(tmp_path: Path) -> None:
    result = _calibrate(tmp_path, threshold=None)
    assert result.status == "target_not_reached" and result.threshold is None


def test_a_serving_version_is_held_within_the_hysteresis(tmp_path: Path) -> None:
    result = _calibrate(tmp_path, threshold=0.9)
    assert result.status == "held" and result.threshold is not None
    assert result.target == 0.8 and result.lower >= 0.78 and result.coverage == 1.0
    assert result.sources == {"calibration": 200, "logged": 0}
    assert "only the target less DISTILL_CALIBRATION_HYSTERESIS" in describe(result)


def test_without_hysteresis_a_serving_version_closes(tmp_path: Path) -> None:
    result = _calibrate(tmp_path, threshold=0.9, calibration_hysteresis=0.0)
    assert result.status == "target_not_reached" and result.threshold is None


def test_hysteresis_does_not_hold_a_version_far_below(tmp_path: Path) -> None:
    result = _calibrate(tmp_path, threshold=0.9, calibration_hysteresis=0.01)
    assert result.status == "target_not_reached" and result.threshold is None
