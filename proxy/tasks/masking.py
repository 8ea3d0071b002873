"""Masking the variable parts of a system prompt, so that one template filled in with
different values is one task.

What is masked, in this order (each pattern sees the text the earlier ones left):
URLs, e-mail addresses, quoted values (``"..."``, ``'...'``, curly quotes, backticks;
at most 200 characters on one line), dates and times (ISO, ``12/31/2026``, ``Dec 2,
2026``, ``2 December 2026``, ``14:05``, weekday names), ids (UUIDs, hex runs of 8 or
more, tokens that mix letters and digits such as ``ORD-1234`` or ``cus_8f3k2j``), and
numbers, on the lower-cased text, whose whitespace is then collapsed: a template that differs
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
_DIGIT = re.compile(r"\d")

# (guard, pattern, placeholder) in the order they apply, on lower-cased text. A pattern
# runs only where its guard finds something: each costs ~0.1-1 ms on a 1 KB prompt on
# this (2-core, shared) machine, a guard a few microseconds, most prompts need few of the
# patterns, and this runs on every request.
_MASKS: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = (
    (
        re.compile(r"://|www\."),
        re.compile(r"\b(?:https?|ftp)://[^\s\"'<>]+|\bwww\.[^\s\"'<>]+"),
        "<url>",
    ),
    (re.compile("@"), re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (
        re.compile("[\"'“‘«`]"),
        re.compile(
            r"\"[^\"\n]{0,200}\"|(?<!\w)'[^'\n]{0,200}'(?!\w)|“[^”\n]{0,200}”"
            r"|‘[^’\n]{0,200}’|«[^»\n]{0,200}»|`[^`\n]{0,200}`"
        ),
        "<quoted>",
    ),
    (
        _DIGIT,
        re.compile(
            # Digit-led alternatives first: the engine skips to the next digit at once.
            r"\d(?:\d{3}-\d{2}-\d{2}"
            r"(?:[t ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?"
            r"|\d?[/.-]\d{1,2}[/.-]\d{2,4}\b"
            rf"|\d?(?:st|nd|rd|th)? {_MONTH}\.?,? \d{{4}}\b"
            r"|\d?:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?)"
        ),
        "<date>",
    ),
    (_DIGIT, re.compile(rf"\b{_MONTH}\.? {_DAY}(?:,? \d{{4}})?\b"), "<date>"),
    (re.compile("day"), re.compile(r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b"), "<date>"),
    (
        _DIGIT,
        re.compile(
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
            r"|\b(?=[a-z_-]*\d)(?=[\d_-]*[a-z])[a-z0-9][a-z0-9_-]{3,}\b"
            r"|\b\d[0-9a-f]{7,}\b"
        ),
        "<id>",
    ),
    (_DIGIT, re.compile(r"[-+]?\d+(?:[.,]\d+)*%?"), "<n>"),
)


def mask(text: str) -> str:
    """The prompt with its variable parts replaced by placeholders (see the module doc)."""
    text = text.lower()
    for guard, pattern, placeholder in _MASKS:
        if guard.search(text):
            text = pattern.sub(placeholder, text)
    return " ".join(text.split())  # 3x faster than re.sub(r"\s+", " ", ...) here
