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


def copy_rows(conn: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """COPY ``rows`` into ``table(columns)`` on the caller's transaction; return the number of rows sent.

    ``table`` and ``columns`` are identifiers chosen by code, never by users.
    """
    buf = io.StringIO()
    n = 0
    for row in rows:
        buf.write("\t".join(_escape(v) for v in row))
        buf.write("\n")
        n += 1
    if n == 0:
        return 0
    buf.seek(0)
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buf)
    return n
