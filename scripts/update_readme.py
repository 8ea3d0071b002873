"""Regenerates the README's settings reference, a table per settings group (`make docs`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from proxy.commands.config import markdown_table

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def render(readme: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{START}\n{markdown_table()}\n{END}", readme)


def main() -> int:
    path = Path(__file__).resolve().parent.parent / "README.md"
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
