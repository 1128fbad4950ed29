"""File importers: data sets on disk → ingest tables (through marconi.db)."""

from __future__ import annotations

from marconi.errors import BadRequest


class ImportFormatError(BadRequest, ValueError):
    """A malformed input file; the message names the file and line."""

    code = "bad_input_file"

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
