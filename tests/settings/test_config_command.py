"""`distill config` and the README's reference list the settings under a heading per group."""

from __future__ import annotations

import pytest

from proxy.cli import main
from proxy.commands.config import markdown_table
from proxy.settings import GROUPS


def _sections(text: str, marker: str) -> dict[str, str]:
    """Heading -> the text up to the next heading."""
    out: dict[str, str] = {}
    for chunk in text.split(marker)[1:]:
        title, _, body = chunk.partition("\n")
        out[title.strip()] = body
    return out


def test_distill_config_prints_each_setting_under_its_group(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_TEACHER_API_KEY", "sk-do-not-print")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "sk-do-not-print" not in out
    sections = _sections("\n" + out, "\n# ")
    assert list(sections) == [g.title for g in GROUPS]
    for group in GROUPS:
        names = [line.split(" = ")[0] for line in sections[group.title].splitlines() if line]
        assert names == list(group.field_names)


def test_markdown_reference_has_a_table_per_group() -> None:
    sections = _sections("\n" + markdown_table(), "\n### ")
    assert list(sections) == [g.title for g in GROUPS]
    for group in GROUPS:
        rows = [r for r in sections[group.title].splitlines() if r.startswith("| `")]
        assert [r.split("`")[1] for r in rows] == [
            f"DISTILL_{n.upper()}" for n in group.field_names
        ]
