"""The README's settings table lists every setting with its current default."""

from __future__ import annotations

from pathlib import Path

from proxy.commands.config import markdown_table
from proxy.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_settings_table_is_current() -> None:
    text = README.read_text()
    assert markdown_table() in text, "README settings table is stale: run `make docs`"


def test_every_setting_has_a_description() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []
