"""What the log keeps of a relayed multipart body (a file upload, an audio file to
transcribe): its short text fields (``model``, ``purpose``, ...) and, per file, the
field name, file name, content type and size. Never the files themselves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

MAX_FIELD_BYTES = 1024  # longer text fields (a prompt, a JSON blob) are only measured


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    data: bytearray = field(default_factory=bytearray)
    size: int = 0


class _Collector:
    def __init__(self) -> None:
        self.part = _Part()
        self.fields: dict[str, Any] = {}
        self.files: list[dict[str, Any]] = []

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        part = self.part
        part.headers[part.header_name.lower()] = part.header_value
        part.header_name, part.header_value = b"", b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.part.size += end - start
        if len(self.part.data) <= MAX_FIELD_BYTES:
            self.part.data += data[start:end]

    def on_part_end(self) -> None:
        part = self.part
        _, params = parse_options_header(part.headers.get(b"content-disposition"))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in params:
            self.files.append(
                {
                    "field": name,
                    "filename": params[b"filename"].decode("utf-8", "replace"),
                    "content_type": part.headers.get(b"content-type", b"").decode("latin-1"),
                    "bytes": part.size,
                }
            )
        elif part.size <= MAX_FIELD_BYTES:
            self.fields[name] = bytes(part.data).decode("utf-8", "replace")
        else:
            self.fields[name] = {"bytes": part.size}


def multipart_summary(content_type: str, content: bytes) -> dict[str, Any] | None:
    """The summary, or None when the body is not multipart/form-data (or is malformed)."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    collector = _Collector()
    callbacks: Any = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_part_data",
            "on_part_end",
        )
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(content)
        parser.finalize()
    except MultipartParseError:
        return None
    return {"multipart": collector.fields, "files": collector.files}
