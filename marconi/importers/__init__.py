"""File importers: data sets on disk → ingest tables (through marconi.db).

Whatever a file holds, a bad one is reported as :class:`ImportFormatError`, naming the file and (where there is
one) the line, never as a traceback: text files are read as UTF-8 line by line (:func:`text_lines`), and text bound
for the database is checked to be text PostgreSQL can store (:func:`storable_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from marconi.errors import BadRequest

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and lone surrogates (a JSON "\ud800" escape, a bad file name)


class ImportFormatError(BadRequest, ValueError):
    """A malformed input file; the message names the file and line."""

    code = "bad_input_file"

    def __init__(self, path, line: int | None, message: str):
        where = f"{printable_path(path)}:{line}" if line is not None else printable_path(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


def printable_path(path) -> str:
    """``path`` as text that can be printed: bytes of a file name that are not UTF-8 are shown as ``\\xff``."""
    return Path(path).as_posix().encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def storable_text(value: str) -> str | None:
    """None when ``value`` can be stored as PostgreSQL text, else what is wrong with it."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return "holds a NUL character, which PostgreSQL cannot store"
    return f"is not valid Unicode text (it holds a lone surrogate \\u{ord(bad.group()):04x})"


def utf8_text(path: Path, data: bytes) -> str:
    """``data`` (the contents of ``path``) decoded as UTF-8; ImportFormatError naming the line and column of the first
    bytes that are not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise _not_utf8(path, data.count(b"\n", 0, exc.start) + 1, data[line_start:], exc.start - line_start) \
            from None


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its line break) of a UTF-8 text file, a byte-order mark dropped.

    ImportFormatError names the file and line of bytes that are not UTF-8, or of a NUL character. Lines end at
    ``\\n`` (``\\r\\n`` too); a file is read one line at a time, so the line number is exact however large it is.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, lineno, raw, exc.start) from None
            line = line.removesuffix("\n").removesuffix("\r")
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            if "\x00" in line:
                raise ImportFormatError(path, lineno, "holds a NUL character, which PostgreSQL cannot store")
            yield lineno, line


def _not_utf8(path: Path, lineno: int, line: bytes, offset: int) -> ImportFormatError:
    column = len(line[:offset].decode("utf-8", "replace")) + 1
    return ImportFormatError(path, lineno, f"not UTF-8 text: byte 0x{line[offset]:02x} at column {column} (save the "
                                           "file as UTF-8)")
