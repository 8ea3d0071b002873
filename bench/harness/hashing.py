"""Seeded, machine-independent randomness: every replay decision is a hash of its inputs."""

from __future__ import annotations

import hashlib


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (stable across runs and machines)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick(options: tuple[str, ...] | list[str], *key: object) -> str:
    """One of `options`, chosen by the hash of `key`."""
    return options[min(len(options) - 1, int(unit_hash(*key) * len(options)))]
