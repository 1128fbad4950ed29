"""Full feature vectors are read in PostgreSQL's binary array form (array_send), and come back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from marconi.db.images import full_vector


def test_binary_arrays_read_back_exactly(engine):
    rng = np.random.default_rng(7)
    vec = rng.normal(size=1280).astype(np.float32)
    vec[:3] = (0.0, -1e-30, 3.4e38)  # zero, a subnormal-ish tiny value and a huge one survive the round trip
    with engine.connect() as conn:
        sent = conn.execute(sa.text("SELECT array_send(CAST(:v AS real[]))"), {"v": vec.tolist()}).scalar()
        text_form = conn.execute(sa.text("SELECT CAST(:v AS real[])"), {"v": vec.tolist()}).scalar()
        assert full_vector(None) is None
        for bad in ("SELECT array_send(CAST('{{1,2},{3,4}}' AS real[]))",  # two dimensions
                    "SELECT array_send(CAST('{1,NULL}' AS real[]))",  # a NULL element
                    "SELECT array_send(CAST('{1,2}' AS float8[]))"):  # another element type
            with pytest.raises(ValueError, match="real"):
                full_vector(conn.execute(sa.text(bad)).scalar())
    got = full_vector(sent)
    assert got.dtype == np.float32 and got.shape == (1280,)
    assert np.array_equal(got, vec) and np.array_equal(got, np.asarray(text_form, dtype=np.float32))
