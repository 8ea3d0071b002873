"""Scrubbing the server's own secrets (client, admin and teacher keys) out of log rows.

The proxy never puts a key into a row itself; this is the safety net for what
upstreams send back (an error message echoing the key it was given) and for keys
clients paste into their messages."""

from __future__ import annotations

import re
from collections.abc import Iterable

PLACEHOLDER = "<SECRET>"
_MIN_SECRET_LEN = 8  # shorter "keys" would match ordinary words


class SecretScrubber:
    def __init__(self, secrets: Iterable[str | None]) -> None:
        known = sorted(
            {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True
        )
        self._pattern = re.compile("|".join(re.escape(s) for s in known)) if known else None
        self._first = {s[:4] for s in known}

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def scrub(self, text: str) -> str:
        if self._pattern is None or not any(p in text for p in self._first):
            return text
        return self._pattern.sub(PLACEHOLDER, text)
