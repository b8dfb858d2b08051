"""Receiving an upload: the multipart body is parsed as it streams in and the file part goes straight to disk,
so memory stays flat whatever the file's size, and an oversized upload is refused as soon as it shows. A body
that is not one a browser or HTTP client would send is refused too: more parts than ``MAX_PARTS``, part
headers beyond ``MAX_HEADER_BYTES``, a field beyond ``MAX_FIELD_BYTES``, no closing boundary."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

FRAMING_ALLOWANCE = 64 * 1024
"""Bytes a multipart body may carry beyond the file itself (boundaries, part headers, small fields)."""
MAX_FIELD_BYTES = 32 * 1024
"""A text field sent next to the file (such as a mapping) is kept up to this size; a larger one is refused."""
MAX_PARTS = 8
"""Parts in one body: the file, a mapping, and a few a form may add."""
MAX_HEADER_BYTES = 16 * 1024
"""Bytes of headers in one part."""


class UploadRefused(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class ReceivedFile:
    filename: str | None
    size: int
    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    """The small text parts sent with the file, by name (the first part of a name wins)."""


def too_large(max_bytes: int) -> str:
    return f"the file is larger than the upload limit of {max_bytes:,} bytes; split it into smaller files"


def clean_filename(raw: bytes | None) -> str | None:
    """The name the client gave, without any folders or control characters, for display only."""
    if not raw:
        return None
    name = raw.decode("utf-8", errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or None


class _FilePart:
    """Multipart callbacks that write the first part named ``field`` to ``path`` and keep the other parts as
    small text fields."""

    def __init__(self, field: str, path: Path) -> None:
        self._field = field.encode()
        self._path = path
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._file: IO[bytes] | None = None
        self._writing = False
        self.found = False
        self.filename: str | None = None
        self.size = 0
        self.fields: dict[str, bytearray] = {}
        self._text: bytearray | None = None
        self._parts = 0
        self._header_bytes = 0
        self.ended = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }

    def _on_part_begin(self) -> None:
        self._disposition = b""
        self._parts += 1
        self._header_bytes = 0
        if self._parts > MAX_PARTS:
            raise UploadRefused(400, f"the multipart body has more than {MAX_PARTS} parts: send the file alone")

    def _header_data(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise UploadRefused(400, f"a part of the multipart body has over {MAX_HEADER_BYTES:,} bytes of headers")

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_data(end - start)
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_data(end - start)
        self._header_value += data[start:end]

    def _on_end(self) -> None:
        self.ended = True

    def _on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if name == self._field and not self.found:
            self.found = self._writing = True
            self.filename = clean_filename(options.get(b"filename"))
            self._file = self._path.open("wb")
        elif name and name != self._field and name.decode(errors="replace") not in self.fields:
            self._text = self.fields[name.decode(errors="replace")] = bytearray()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._writing and self._file is not None:
            self._file.write(data[start:end])
            self.size += end - start
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise UploadRefused(413, f"a form field sent with the file is larger than {MAX_FIELD_BYTES:,} bytes")

    def _on_part_end(self) -> None:
        self._writing = False
        self._text = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_file(request: Request, *, field: str, destination: Path, max_bytes: int) -> ReceivedFile:
    """Stream the part named ``field`` of a multipart/form-data body to ``destination``; otherwise
    ``UploadRefused`` with the HTTP status and a message the client can act on (nothing is left on disk)."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadRefused(415, f"send the CSV as multipart/form-data, in a field named {field!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FRAMING_ALLOWANCE:
        raise UploadRefused(413, too_large(max_bytes))

    partial = destination.with_name(destination.name + ".part")
    part = _FilePart(field, partial)
    parser = MultipartParser(options[b"boundary"], part.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if part.size > max_bytes or received > max_bytes + FRAMING_ALLOWANCE:
                raise UploadRefused(413, too_large(max_bytes))
            parser.write(chunk)
        parser.finalize()
        if part.size > max_bytes:
            raise UploadRefused(413, too_large(max_bytes))
        if not part.ended:
            raise UploadRefused(400, "the multipart body ends before its closing boundary: the upload is incomplete")
        if not part.found:
            raise UploadRefused(422, f"no file in the multipart field {field!r}")
        part.close()
        await asyncio.to_thread(os.replace, partial, destination)
        fields = {name: value.decode("utf-8", errors="replace") for name, value in part.fields.items()}
        return ReceivedFile(filename=part.filename, size=part.size, fields=fields)
    except MultipartParseError as error:
        raise UploadRefused(400, f"the multipart body is malformed: {str(error)[:200]}") from error
    finally:
        part.close()
        partial.unlink(missing_ok=True)
