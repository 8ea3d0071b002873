"""Masking the variable parts of a system prompt, so that one template filled in with
different values is one task.

What is masked, in this order (each pattern sees the text the earlier ones left):
URLs, e-mail addresses, quoted values (``"..."``, ``'...'``, curly quotes, backticks;
at most 200 characters on one line), dates and times (ISO, ``12/31/2026``, ``Dec 2,
2026``, ``2 December 2026``, ``14:05``, weekday names), ids (UUIDs, hex runs of 8 or
more, tokens that mix letters and digits such as ``ORD-1234`` or ``cus_8f3k2j``), and
numbers. Then whitespace is collapsed and the text lower-cased: a template that differs
only in its line breaks or capitals is the same task.

Over-masking is the safe side: two prompts that differ only in a masked part merge, and a
user who wants them apart names the tasks (``x-distill-task``).
"""

from __future__ import annotations

import re

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"

# (pattern, placeholder) in the order they apply.
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:https?|ftp)://[^\s\"'<>]+|\bwww\.[^\s\"'<>]+", re.I), "<url>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (
        re.compile(
            r"\"[^\"\n]{0,200}\"|(?<!\w)'[^'\n]{0,200}'(?!\w)|“[^”\n]{0,200}”"
            r"|‘[^’\n]{0,200}’|«[^»\n]{0,200}»|`[^`\n]{0,200}`"
        ),
        "<quoted>",
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?"
            r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"
            rf"|\b{_MONTH}\.? {_DAY},? \d{{4}}\b|\b{_DAY} {_MONTH}\.?,? \d{{4}}\b"
            rf"|\b{_MONTH}\.? {_DAY}\b"
            r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?"
            r"|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b",
            re.I,
        ),
        "<date>",
    ),
    (
        re.compile(
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
            r"|\b[0-9a-f]{8,}\b"
            r"|\b(?=[a-z_-]*\d)(?=[\d_-]*[a-z])[a-z0-9][a-z0-9_-]{3,}\b",
            re.I,
        ),
        "<id>",
    ),
    (re.compile(r"[-+]?\d+(?:[.,]\d+)*%?"), "<n>"),
)
_SPACE = re.compile(r"\s+")


def mask(text: str) -> str:
    """The prompt with its variable parts replaced by placeholders (see the module doc)."""
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    return _SPACE.sub(" ", text).strip().lower()
