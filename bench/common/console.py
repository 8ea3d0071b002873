"""Progress lines of a benchmark on stderr (a long run should say what it is doing)."""

from __future__ import annotations

import sys
import time


def say(message: str) -> None:
    """Prints `[HH:MM:SS] message` to stderr, flushed."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
