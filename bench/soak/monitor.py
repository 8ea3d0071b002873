"""Samples the server's resident memory and CPU while the soak runs (psutil, a thread)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Sample:
    at: float  # time.monotonic()
    rss_mb: float  # the server process alone (what must not grow)
    children_mb: float  # its children (a training subprocess, an embedded vLLM)
    cpu_percent: float  # of one core, server process only


@dataclass
class ProcessMonitor:
    pid: int
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProcessMonitor:
        self._thread = threading.Thread(target=self._run, name="soak-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            process = psutil.Process(self.pid)
            process.cpu_percent(None)  # primes the counter
            while not self._stop.wait(self.interval):
                rss = process.memory_info().rss
                children = 0
                for child in process.children(recursive=True):
                    try:
                        children += child.memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
                cpu = process.cpu_percent(None)
                self.samples.append(Sample(time.monotonic(), rss / 2**20, children / 2**20, cpu))
        except psutil.NoSuchProcess:
            return


def rss_growth(samples: list[Sample], warmup_fraction: float = 0.2) -> dict[str, float]:
    """Mean RSS just after warm-up vs over the last fifth of the run (MB and %)."""
    if len(samples) < 10:
        return {
            "early_mb": float("nan"),
            "late_mb": float("nan"),
            "growth_mb": 0.0,
            "growth_pct": 0.0,
        }
    n = len(samples)
    start = int(n * warmup_fraction)
    early = samples[start : start + max(2, n // 5)]
    late = samples[-max(2, n // 5) :]
    early_mb = sum(s.rss_mb for s in early) / len(early)
    late_mb = sum(s.rss_mb for s in late) / len(late)
    growth = late_mb - early_mb
    return {
        "early_mb": early_mb,
        "late_mb": late_mb,
        "growth_mb": growth,
        "growth_pct": 100 * growth / early_mb if early_mb else 0.0,
    }
