"""Recognizing how a CSV file is written from its first bytes: the text encoding (byte-order marks, UTF-16 without
one, UTF-8, else what charset-normalizer finds, preferring Windows-1252 when it is as plausible, as Excel writes it)
and the delimiter (comma, semicolon, tab or pipe). Pure: bytes in, a format or a ``FileProblem`` out."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass

from charset_normalizer import from_bytes

from services.ingest.domain import FileProblem

HEAD_BYTES = 1024 * 1024
"""How much of a file its format is judged by."""

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SNIFF_RECORDS = 50

STRAY_BYTES = "kagibag-windows-1252-stray-bytes"
"""Decoding error handler: a byte the file's encoding cannot decode is read as Windows-1252 (Latin-1 for the five
bytes Windows-1252 leaves undefined). A UTF-8 export with one pasted Windows-1252 name keeps every other
character intact instead of failing the whole file."""

STRAY_SHARE = 20
"""A file is still UTF-8 when it has at least this many UTF-8 characters beyond ASCII per undecodable byte."""

WINDOWS_1252 = "cp1252"
LATIN_SINGLE_BYTE = frozenset(
    {"cp1252", "cp1250", "cp1257", "latin_1", "iso8859_15", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_9",
     "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_16", "mac_roman", "mac_latin2", "cp850", "cp775"}
)
PLAUSIBILITY_MARGIN = 0.02
"""Windows-1252 is taken over the detector's best guess when its 'mess' ratio is at most this much worse."""

BINARY_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive or an Excel workbook (.xlsx)"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)
SAVE_AS_CSV = "save it as CSV (in Excel: File > Save As > CSV UTF-8) and upload it again"


def _read_stray_bytes(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    stray = error.object[error.start : error.end]
    return "".join(_windows_1252(byte) for byte in stray), error.end


def _windows_1252(byte: int) -> str:
    try:
        return bytes([byte]).decode(WINDOWS_1252)
    except UnicodeDecodeError:
        return bytes([byte]).decode("latin_1")


codecs.register_error(STRAY_BYTES, _read_stray_bytes)


@dataclass(frozen=True)
class FileFormat:
    """How to read a file: a Python codec name (``utf-8-sig``, ``utf-16``, ``cp1252``...) and the CSV dialect."""

    encoding: str = "utf-8-sig"
    delimiter: str = ","
    quotechar: str = '"'

    def describe(self) -> str:
        return f"{self.encoding}, {DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated"


def detect_format(head: bytes) -> FileFormat:
    """The format of a file beginning with ``head`` (up to ``HEAD_BYTES``); ``FileProblem`` for an empty or
    binary file."""
    if not head.strip():
        raise FileProblem("the file is empty: expected a header row naming the columns, with 'email'")
    encoding = detect_encoding(head)
    text = head.decode(encoding, errors=STRAY_BYTES)
    _refuse_binary_text(text)
    return FileFormat(encoding=encoding, delimiter=detect_delimiter(text))


def detect_encoding(head: bytes) -> str:
    for signature, description in BINARY_SIGNATURES:
        if head.startswith(signature):
            raise FileProblem(f"the file is {description}, not a CSV text file: {SAVE_AS_CSV}")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    unmarked_utf16 = _unmarked_utf16(head)
    if unmarked_utf16:
        return unmarked_utf16
    if b"\x00" in head:
        raise FileProblem(f"the file contains binary data (NUL bytes), not CSV text: {SAVE_AS_CSV}")
    if _is_utf8(head):
        return "utf-8"
    return _single_byte_encoding(head)


def _unmarked_utf16(head: bytes) -> str | None:
    """UTF-16 without a byte-order mark: ASCII-range text has a NUL in every other byte."""
    sample = head[: 4096 - 4096 % 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _is_utf8(head: bytes) -> bool:
    """UTF-8, or UTF-8 with a few stray bytes of another encoding among many UTF-8 characters (a name pasted
    from elsewhere): those bytes are read as Windows-1252 by ``STRAY_BYTES``."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    invalid = text.count("\ufffd") - head.count("\ufffd".encode())
    if invalid == 0:
        return True
    multibyte = sum(1 for ch in text if ch > "\x7f" and ch != "\ufffd")
    return invalid <= multibyte // STRAY_SHARE


def _single_byte_encoding(head: bytes) -> str:
    """Not UTF-8: ask the detector; among Latin single-byte encodings (which short samples cannot tell apart)
    take Windows-1252, Excel's own, unless it reads clearly worse."""
    matches = from_bytes(head[:HEAD_BYTES])
    best = matches.best()
    windows = from_bytes(head[:HEAD_BYTES], cp_isolation=[WINDOWS_1252]).best()
    if windows is not None and (
        best is None or best.encoding in LATIN_SINGLE_BYTE or windows.chaos <= best.chaos + PLAUSIBILITY_MARGIN
    ):
        return WINDOWS_1252
    if best is None:
        return WINDOWS_1252
    return best.encoding


def _refuse_binary_text(text: str) -> None:
    """Text full of control characters is not a CSV someone exported."""
    sample = text[:65536]
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n")
    if sample and controls > max(8, len(sample) // 100):
        raise FileProblem(f"the file contains binary data (control characters), not CSV text: {SAVE_AS_CSV}")


def detect_delimiter(text: str) -> str:
    """The delimiter that splits the first records most consistently into the most columns (comma when none
    splits anything: a one-column file)."""
    complete = text[: text.rfind("\n") + 1] if "\n" in text else text
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        widths = _widths(complete, delimiter)
        if not widths or widths[0] < 2:
            continue
        header_width = widths[0]
        consistent = sum(1 for width in widths if width == header_width) / len(widths)
        score = (consistent, header_width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _widths(text: str, delimiter: str) -> list[int]:
    widths: list[int] = []
    try:
        for cells in csv.reader(io.StringIO(text), delimiter=delimiter):
            if "".join(cells).strip():
                widths.append(len(cells))
            if len(widths) >= SNIFF_RECORDS:
                break
    except csv.Error:
        pass
    return widths
