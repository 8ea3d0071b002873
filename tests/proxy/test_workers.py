"""`distill serve --workers N` refuses set-ups that cannot share one log or one student."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from proxy.settings import Settings
from proxy.workers import WorkersRefused, check_workers


def test_duckdb_with_several_workers_is_refused(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "log.duckdb", workers=2, student_url="http://s/v1")
    with pytest.raises(WorkersRefused, match="DISTILL_DB=postgresql://"):
        check_workers(settings)


def test_embedded_student_with_several_workers_is_refused() -> None:
    settings = Settings(db="postgresql://u@127.0.0.1/db", workers=2)
    with pytest.raises(WorkersRefused, match="DISTILL_STUDENT_URL"):
        check_workers(settings)


def test_one_worker_and_postgres_workers_pass(tmp_path: Path) -> None:
    check_workers(Settings(db=tmp_path / "log.duckdb"))
    check_workers(Settings(db="postgresql://u@h/db", workers=4, student_url="http://s/v1"))


def test_the_cli_flag_reaches_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_DB", str(tmp_path / "log.duckdb"))
    monkeypatch.setenv("DISTILL_STUDENT_URL", "http://s/v1")
    with pytest.raises(WorkersRefused):
        main(["serve", "--workers", "3"])


def test_distill_config_masks_database_passwords() -> None:
    from proxy.commands.config import effective

    settings = Settings(db="postgresql://u:s3cret@h:5432/db", redis_url="redis://:pw@r:6379/0")
    shown = effective(settings)
    assert "s3cret" not in str(shown["db"]) and "pw" not in str(shown["redis_url"])
    assert shown["db"] == "postgresql://u:***@h:5432/db"
