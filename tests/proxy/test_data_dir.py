"""Every working file of a run lives under one data directory (DISTILL_DATA_DIR, default
`data`): the DuckDB log, the converted default model, runs, logs, test artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.server import legacy_db_warning
from proxy.settings import Settings, load_settings
from proxy.student.model import DEFAULT_MODEL_NAME, default_model_dir
from tests.paths import ARTIFACTS, E2E_DATA, REPO


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISTILL_DB", "DISTILL_DATA_DIR", "DISTILL_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_put_the_log_in_the_data_directory() -> None:
    settings = Settings()
    assert settings.data_dir == Path("data")
    assert settings.db == Path("data") / "distill.duckdb"
    assert default_model_dir(settings) == Path("data") / "models" / DEFAULT_MODEL_NAME


def test_the_log_follows_the_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DISTILL_DATA_DIR", str(tmp_path / "work"))
    assert Settings().db == tmp_path / "work" / "distill.duckdb"
    assert Settings(data_dir=tmp_path / "kw").db == tmp_path / "kw" / "distill.duckdb"
    monkeypatch.setenv("DISTILL_DB", str(tmp_path / "elsewhere.duckdb"))
    assert Settings().db == tmp_path / "elsewhere.duckdb"  # an explicit DB still wins
    monkeypatch.delenv("DISTILL_DB")
    monkeypatch.delenv("DISTILL_DATA_DIR")
    toml = tmp_path / "distill.toml"
    toml.write_text(f'data_dir = "{tmp_path / "from-toml"}"\n')
    assert load_settings(toml).db == tmp_path / "from-toml" / "distill.duckdb"


def test_install_converts_the_default_model_where_the_server_looks() -> None:
    install = (REPO / "scripts" / "install.sh").read_text()
    data_dir = re.search(r'^DATA_DIR="\$\{DISTILL_DATA_DIR:-(\w+)\}"', install, re.M)
    match = re.search(r'--out "\$DATA_DIR/models/([\w.-]+)"', install)
    assert data_dir and match, "scripts/install.sh no longer converts the model into the data dir"
    assert Path(data_dir.group(1)) == Settings().data_dir
    assert match.group(1) == DEFAULT_MODEL_NAME


def test_test_artifacts_and_ignores_stay_in_the_data_directory() -> None:
    data = REPO / Settings().data_dir
    assert ARTIFACTS.is_relative_to(data) and E2E_DATA.is_relative_to(data)
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert f"/{Settings().data_dir}/" in ignored
    # No test writes its artifacts beside the data directory any more.
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "tests").rglob("*.py")
        if path != Path(__file__).resolve()
        and re.search(r'(REPO|ROOT) / "test-artifacts"|Path\("test-artifacts', path.read_text())
    ]
    assert offenders == []


def test_a_log_left_by_an_older_version_is_pointed_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert legacy_db_warning(Settings()) is None  # a fresh checkout: nothing to say
    (tmp_path / "distill.duckdb").write_bytes(b"old log")
    warning = legacy_db_warning(Settings())
    assert warning is not None and "data/distill.duckdb" in warning and "DISTILL_DB" in warning
    assert legacy_db_warning(Settings(db=tmp_path / "distill.duckdb")) is None  # kept on purpose
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "distill.duckdb").write_bytes(b"new log")
    assert legacy_db_warning(Settings()) is None  # already moved (or a new log in use)
