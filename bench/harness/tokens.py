"""Tokenizers for the replay teacher: a `tokenizers` JSON file (the student's own) or a regex.

The teacher's logprob tokens are its answer split by the student's tokenizer, so soft
labels line up with the student's vocabulary. Where that tokenizer file comes from (the
SmolLM2 GGUF, `bench.banking77.tokens`) is the caller's business: this module only loads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

TokenizerKind = Literal["auto", "smollm2", "simple"]

_SIMPLE_PATTERN = re.compile(r"[A-Za-z]+|\d+|\s+|[^\sA-Za-z\d]")


class TokenizerUnavailable(RuntimeError):
    """The requested tokenizer cannot be loaded on this machine."""


class Tokenizer(Protocol):
    """What the replay teacher needs from a tokenizer."""

    name: str

    def split(self, text: str) -> list[str]:
        """Token strings whose concatenation is `text`."""
        ...

    def count(self, text: str) -> int:
        """Number of tokens in `text`."""
        ...


class SimpleTokenizer:
    """Words, digit runs, whitespace runs and single punctuation marks."""

    name = "simple"

    def split(self, text: str) -> list[str]:
        return _SIMPLE_PATTERN.findall(text)

    def count(self, text: str) -> int:
        return sum(1 for tok in _SIMPLE_PATTERN.findall(text) if not tok.isspace())


class HFTokenizer:
    """A `tokenizers.Tokenizer` (byte-level BPE) decoded token by token."""

    def __init__(self, path: Path, name: str) -> None:
        from tokenizers import Tokenizer as _Tok  # fast Rust library, no torch

        self._tok = _Tok.from_file(str(path))
        self.name = name

    def split(self, text: str) -> list[str]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        pieces = [self._tok.decode([i]) for i in ids]
        # Byte-level BPE can split a multi-byte character across tokens; then the
        # per-token decode is lossy and the regex split keeps the text exact.
        if "".join(pieces) != text:
            return SimpleTokenizer().split(text)
        return pieces

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)


def load_tokenizer(
    kind: TokenizerKind, path: Path, extract: Callable[[Path], None] | None = None
) -> Tokenizer:
    """The tokenizer file at `path` (written by `extract` when missing), or the simple one
    (`simple`, or `auto` as a fallback when the file cannot be had)."""
    if kind == "simple":
        return SimpleTokenizer()
    try:
        if not path.is_file():
            if extract is None:
                raise TokenizerUnavailable(f"{path} does not exist")
            extract(path)
        return HFTokenizer(path, "smollm2")
    except (TokenizerUnavailable, OSError, ValueError) as exc:
        if kind == "smollm2":
            raise TokenizerUnavailable(f"SmolLM2 tokenizer unavailable: {exc}") from exc
        return SimpleTokenizer()
