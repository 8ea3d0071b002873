"""Data hygiene of the request log: PII redaction, secret scrubbing, retention."""

from proxy.privacy.redact import BUILTIN_KINDS, Redactor
from proxy.privacy.retention import purge_once, run_retention
from proxy.privacy.secrets import SecretScrubber
from proxy.privacy.sink import GuardedSink, build_sink, scrub_secrets, scrubber_from_settings

__all__ = [
    "BUILTIN_KINDS",
    "GuardedSink",
    "Redactor",
    "SecretScrubber",
    "build_sink",
    "purge_once",
    "run_retention",
    "scrub_secrets",
    "scrubber_from_settings",
]
