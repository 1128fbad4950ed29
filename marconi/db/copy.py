"""Bulk loading with COPY through the connection's psycopg2 cursor."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import sqlalchemy as sa


def _escape(value) -> str:
    if value is None:
        return r"\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(conn: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence],
              chunk_rows: int = 20_000) -> int:
    """COPY ``rows`` into ``table(columns)`` on the caller's transaction; return the number of rows sent.

    Rows are sent in chunks so memory stays bounded for any number of rows. ``table`` and ``columns`` are
    identifiers chosen by code, never by users.
    """
    raw = conn.connection.dbapi_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    n = 0
    buf = io.StringIO()
    pending = 0

    def send() -> None:
        buf.seek(0)
        with raw.cursor() as cur:
            cur.copy_expert(statement, buf)
        buf.seek(0)
        buf.truncate()

    for row in rows:
        buf.write("\t".join(_escape(v) for v in row))
        buf.write("\n")
        n += 1
        pending += 1
        if pending >= chunk_rows:
            send()
            pending = 0
    if pending:
        send()
    return n
