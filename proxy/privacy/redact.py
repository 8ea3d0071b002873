"""PII redaction of text before it is logged (and so before any training snapshot).

Built-in detectors, each replaced by a typed placeholder:

- ``email``  ``<EMAIL>``: local@domain.tld
- ``phone``  ``<PHONE>``: 9-15 digits written as a phone number: ``+`` and a country
  code, or groups separated by spaces, dots or dashes, or an area code in
  parentheses. Bare digit runs without ``+`` are left alone (order numbers), and so
  are dotted IPv4 addresses and dates (too few digits).
- ``card``   ``<CARD>``: 13-19 digits, contiguous or in the usual 4-4-4-4 / 4-6-5
  groups, that pass the Luhn check.
- ``iban``   ``<IBAN>``: country code, check digits and 11-30 letters/digits (spaces
  every four allowed) that pass the ISO 13616 mod-97 check.

Custom patterns (``redact_patterns``: name -> Python regex) are replaced by
``<NAME>`` (upper-cased). Every pattern is bounded (no unbounded nested repetition),
so hostile multi-megabyte input cannot make redaction explode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

BUILTIN_KINDS = ("email", "phone", "card", "iban")

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])"
)
_CARD = re.compile(
    r"(?<![\w-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{4}|\d{4}([ -])\d{6}\2\d{4,5}|\d{13,19})(?![\w])"
)
_IBAN = re.compile(
    r"(?<![\w])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?(?![\w])",
    re.IGNORECASE,
)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{8,15}"  # +14155552671
    r"|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,8}){1,5}"
    r")(?![\w])"
)
_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "<CARD>" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def _iban(match: re.Match[str]) -> str:
    return "<IBAN>" if iban_ok(match.group(0)) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if not 9 <= digits <= 15 or _DOTTED_QUAD.match(text) or _ISO_DATE.match(text):
        return text
    return "<PHONE>"


Replacement = str | Callable[[re.Match[str]], str]


_DIGIT = re.compile(r"\d")


def _has_digit(text: str) -> bool:
    return _DIGIT.search(text) is not None


def _has_at(text: str) -> bool:
    return "@" in text


def _always(text: str) -> bool:
    return True


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    replacement: Replacement
    # A cheap test that must hold for the pattern to match at all (skips most texts).
    gate: Callable[[str], bool] = _always


# Order matters: IBANs and cards contain digit runs the phone pattern would take.
_BUILTIN: dict[str, Detector] = {
    "iban": Detector("iban", _IBAN, _iban, _has_digit),
    "card": Detector("card", _CARD, _card, _has_digit),
    "email": Detector("email", _EMAIL, "<EMAIL>", _has_at),
    "phone": Detector("phone", _PHONE, _phone, _has_digit),
}


class Redactor:
    """Replaces PII in strings; `redact` is pure and never raises on any str input."""

    def __init__(self, kinds: Iterable[str], patterns: Mapping[str, str] | None = None) -> None:
        wanted = {k.strip().lower() for k in kinds if k.strip()}
        unknown = wanted - set(BUILTIN_KINDS)
        if unknown:
            raise ValueError(
                f"unknown PII kinds {sorted(unknown)}; choose from {', '.join(BUILTIN_KINDS)}"
            )
        self.detectors = [d for k, d in _BUILTIN.items() if k in wanted]
        for name, regex in (patterns or {}).items():
            try:
                compiled = re.compile(regex)
            except re.error as exc:
                raise ValueError(f"redact_patterns[{name!r}] is not a valid regex: {exc}") from exc
            self.detectors.append(Detector(name, compiled, f"<{name.upper()}>"))

    def redact(self, text: str) -> str:
        for detector in self.detectors:
            if detector.gate(text):
                text = detector.pattern.sub(detector.replacement, text)
        return text

    def kinds_found(self, text: str) -> list[str]:
        """The kinds present in `text` (for tests and dry runs)."""
        return [
            d.kind
            for d in self.detectors
            if d.gate(text) and d.pattern.sub(d.replacement, text) != text
        ]
