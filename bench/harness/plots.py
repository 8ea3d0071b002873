"""Matplotlib for the benchmarks' PNG reports, without a display."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on benchmark machines
    import matplotlib.pyplot as plt

    return plt
