"""Fixtures for the trainer tests (rows and snapshots: see trainer_rows.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.trainer.trainer_rows import RowFactory, SnapshotWriter, build_row, write_snapshot


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
def smol_tokenizer_dir(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """SmolLM2's real tokenizer (from the default student's GGUF in data/models/gguf/, see
    `trainer.convert_gguf.find_gguf`), cached across sessions in pytest's cache dir (per
    session with ``-p no:cacheprovider``)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from trainer.convert_gguf import ConversionError, find_gguf

    cache = getattr(pytestconfig, "cache", None)
    target = (
        Path(cache.mkdir("trainer-smollm2-tokenizer"))
        if cache is not None
        else tmp_path_factory.mktemp("smollm2-tokenizer")
    )
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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer_dir: Path) -> Path:
    """A tiny random Llama (hidden 64, 2 layers) with SmolLM2's tokenizer and chat template.

    initializer_range=0.5 instead of 0.02: with tiny tied embeddings the logits of a 64-wide
    model cannot leave "uniform over 49k tokens", and a LoRA (which never touches embeddings)
    could not learn anything. No pad_token_id in the config: it would zero the embedding of
    <|im_end|> (= the pad token), and the model could never learn to stop.
    """
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(smol_tokenizer_dir))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, initializer_range=0.5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    target = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target
