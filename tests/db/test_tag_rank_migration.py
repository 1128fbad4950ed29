"""Migration 0016: image_tags.rank, the order an image's tags are shown in; rows written before it keep their order
by score, and a downgrade takes the column away again."""

from __future__ import annotations

import sqlalchemy as sa

from marconi.db import migrate


def test_migration_0016_ranks_existing_tags_by_score_and_downgrades(new_database):
    from marconi.config import Config
    from marconi.db import make_engine

    eng = make_engine(Config(), url=new_database())
    rank_column = sa.text("SELECT count(*) FROM information_schema.columns "
                          "WHERE table_name = 'image_tags' AND column_name = 'rank'")
    try:
        migrate.downgrade(eng, "0015")
        with eng.begin() as conn:
            assert conn.execute(rank_column).scalar() == 0
            conn.execute(sa.text(
                "INSERT INTO image_tags (image_id, run_id, tag, score, direct) VALUES "
                "(1, 9, 'dog', 0.9, false), (1, 9, 'dalmatian', 0.6, true), (1, 9, 'animal', 0.9, false), "
                "(2, 9, 'cup', 0.4, true)"))
        migrate.upgrade(eng)
        with eng.connect() as conn:
            ranks = conn.execute(sa.text("SELECT image_id, tag, rank FROM image_tags ORDER BY image_id, rank")).all()
            assert [tuple(r) for r in ranks] == [(1, "animal", 1), (1, "dog", 2), (1, "dalmatian", 3), (2, "cup", 1)]
        with eng.begin() as conn:  # a rank is required, positive and unique per image
            for values in ("(3, 9, 'x', 0.5, true, NULL)", "(3, 9, 'x', 0.5, true, 0)", "(1, 9, 'y', 0.5, true, 1)"):
                try:
                    with conn.begin_nested():
                        conn.execute(sa.text(f"INSERT INTO image_tags (image_id, run_id, tag, score, direct, rank) "
                                             f"VALUES {values}"))
                except sa.exc.IntegrityError:
                    continue
                raise AssertionError(f"{values} was accepted")
        migrate.downgrade(eng, "0015")
        with eng.connect() as conn:
            assert conn.execute(rank_column).scalar() == 0
            assert conn.execute(sa.text("SELECT count(*) FROM image_tags")).scalar() == 4
        migrate.upgrade(eng)
    finally:
        eng.dispose()
