"""Bulk loading: binary COPY of (id, vector) rows gives exactly what the text COPY gives."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from marconi.db.copy import copy_id_vectors, copy_rows
from marconi.db.cube import to_pg_array


@pytest.fixture()
def vector_tables(engine):
    with engine.begin() as conn:
        for name in ("copy_binary", "copy_text"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            conn.execute(sa.text(f"CREATE TABLE {name} (id bigint PRIMARY KEY, vec real[] NOT NULL)"))
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE copy_binary, copy_text"))


def _read(conn, table):
    rows = conn.execute(sa.text(f"SELECT id, vec FROM {table} ORDER BY id")).all()
    return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.float32)


def test_binary_copy_matches_text_copy_bit_for_bit(engine, vector_tables):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, 1280)).astype(np.float32)
    vectors[0, :4] = [0.0, -0.0, 1e-38, -3.4e38]  # zero, negative zero, a tiny and a huge float4
    ids = np.arange(10**10, 10**10 + 300)  # beyond int32: the id column is bigint
    with engine.begin() as conn:
        assert copy_id_vectors(conn, "copy_binary", ("id", "vec"), ids, vectors) == 300
        rows = ((int(i), to_pg_array(v)) for i, v in zip(ids, vectors, strict=True))
        copy_rows(conn, "copy_text", ("id", "vec"), rows)
    with engine.connect() as conn:
        got_ids, got = _read(conn, "copy_binary")
        text_ids, text = _read(conn, "copy_text")
    assert got_ids == [int(i) for i in ids] == text_ids
    np.testing.assert_array_equal(got, vectors)
    np.testing.assert_array_equal(got, text)
    assert np.signbit(got[0, 1])


def test_binary_copy_refuses_mismatched_ids(engine, vector_tables):
    with engine.begin() as conn, pytest.raises(ValueError, match="3 ids for 2 vectors"):
        copy_id_vectors(conn, "copy_binary", ("id", "vec"), [1, 2, 3], np.zeros((2, 4), dtype=np.float32))


def test_binary_copy_of_nothing_writes_nothing(engine, vector_tables):
    with engine.begin() as conn:
        assert copy_id_vectors(conn, "copy_binary", ("id", "vec"), [], np.zeros((0, 8), dtype=np.float32)) == 0
        assert conn.execute(sa.text("SELECT count(*) FROM copy_binary")).scalar() == 0
