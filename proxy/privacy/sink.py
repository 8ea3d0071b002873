"""The chat service's log sink: every row passes here on its way to the log writer.

Order: the limiter books the row's real token usage and cost (it needs the raw row),
then the server's own secrets are scrubbed (always), then PII is redacted (when
``redact_pii`` is on), then the row is submitted. So neither the DuckDB file, the
spill journal nor any training snapshot ever sees the original text. A row that waits
for background work is journaled when its response goes out (`hold`): a copy, cleaned
the same way (the limiter books the complete row only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from proxy.privacy.records import map_strings, rewrite_record
from proxy.privacy.redact import Redactor
from proxy.privacy.secrets import SecretScrubber

if TYPE_CHECKING:
    from proxy.settings import Settings

Record = dict[str, Any]


class HeldRows(Protocol):
    """Where held rows are journaled (`proxy.logstore.held.HeldJournal`)."""

    def hold(self, record: Mapping[str, Any]) -> Any: ...
    def release(self, token: Any) -> None: ...


def redactor_from_settings(settings: Settings) -> Redactor | None:
    if not settings.redact_pii:
        return None
    return Redactor(settings.redact_kinds.split(","), settings.redact_patterns)


def scrubber_from_settings(settings: Settings) -> SecretScrubber:
    teacher = settings.teacher_api_key.get_secret_value() if settings.teacher_api_key else None
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    return SecretScrubber([teacher, admin, *settings.client_keys])


def scrub_secrets(state: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` with the server's secrets replaced (uses ``state.scrubber`` if present)."""
    scrubber: SecretScrubber | None = getattr(state, "scrubber", None)
    if scrubber is None or not scrubber.active:
        return payload
    return map_strings(payload, scrubber.scrub)  # type: ignore[no-any-return]


class GuardedSink:
    def __init__(
        self,
        submit: Callable[[Record], None],
        *,
        settle: Callable[[Record], None] | None = None,
        scrubber: SecretScrubber | None = None,
        redactor: Redactor | None = None,
        held: HeldRows | None = None,
    ) -> None:
        self._submit = submit
        self._settle = settle
        self._scrubber = scrubber if scrubber is not None and scrubber.active else None
        self._redactor = redactor
        self._held = held

    def __call__(self, record: Record) -> None:
        if self._settle is not None:
            self._settle(record)
        self._clean(record)
        self._submit(record)

    def _clean(self, record: Record) -> None:
        if self._scrubber is not None:
            rewrite_record(record, self._scrubber.scrub)
        if self._redactor is not None:
            rewrite_record(record, self._redactor.redact)

    def hold(self, record: Record) -> Any:
        """Journals a cleaned copy of a row that waits for background work; the token for
        `release` (None without a held-row journal: the log is not durable)."""
        if self._held is None:
            return None
        copy = dict(record)  # cleaning replaces column values: the row itself is untouched
        self._clean(copy)
        return self._held.hold(copy)

    def release(self, token: Any) -> None:
        if self._held is not None:
            self._held.release(token)


def build_sink(
    settings: Settings,
    submit: Callable[[Record], None],
    settle: Callable[[Record], None] | None = None,
    held: HeldRows | None = None,
) -> GuardedSink:
    return GuardedSink(
        submit,
        settle=settle,
        scrubber=scrubber_from_settings(settings),
        redactor=redactor_from_settings(settings),
        held=held,
    )
