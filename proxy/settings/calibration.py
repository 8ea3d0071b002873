"""Calibration settings: the agreement target and how the per-version thresholds are found
(proxy/loop/calibration.py, docs/calibration.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CalibrationSettings(BaseModel):
    """The agreement a serving student must keep, and the evidence that shows it."""

    target_agreement: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Calibration mode (the default): per student version, the lowest threshold "
        "at which, with probability calibration_confidence, the student's agreement with the "
        "teacher on the requests it serves is at least this. Agreement counts the teacher's own "
        "mistakes against the student: choose about 10 points below how often the teacher is "
        "right (0.8 for a teacher right ~90% of the time). docs/calibration.md.",
    )
    calibration_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between re-calibrations from logged pairs (a new student "
        "serves nothing until its pairs are counted, so keep it short).",
    )
    calibration_min_pairs: int = Field(
        30,
        ge=1,
        description="Fewest (student, teacher) pairs at or above a threshold for it to count "
        "as calibrated; below it the student serves nothing (calibration mode).",
    )
    calibration_hysteresis: float = Field(
        0.02,
        ge=0,
        lt=0.5,
        description="A version already serving keeps serving while its agreement lower bound "
        "stays above target_agreement minus this (status `held`), so fresh pairs that nudge the "
        "bound a hair under the target do not switch it off and on. 0: every recalibration "
        "applies the target itself.",
    )
    calibration_confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="Confidence level of the Wilson lower bound used to compare the "
        "agreement estimate with target_agreement.",
    )
