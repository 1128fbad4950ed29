"""Radio variety: a per-song hub score, and radio() with a variety argument.

A few songs sit near almost every query in the song2vec space ("hubs"), so they turn up in most radios whatever
the seeds. ``song_vectors.hub`` is each song's mean score over the queries that rank it highest (written by
`marconi train songs`; NULL for vectors trained before this migration). A radio with variety v re-ranks its
nearest candidates by ``score - v * hub`` (CSLS, Conneau et al. 2018), which lowers hubs and leaves the rest of
the order alone. The four-argument radio() does this in SQL; the three-argument one is unchanged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RADIO_VARIETY = """
        CREATE FUNCTION radio(seed_keys text[], n integer, max_per_artist integer, variety double precision)
        RETURNS TABLE (key text, title text, artist text, distance double precision, score double precision)
        LANGUAGE sql STABLE AS $$
            WITH run AS (
                SELECT coalesce((metrics->>'item_norm')::float8, 1.0) AS m
                FROM model_runs WHERE kind = 'songs' AND status = 'serving'
            ), q AS (
                SELECT cube_distance(song_query_vector(seed_keys), cube(0.0)) AS qn
            ), nn AS MATERIALIZED (
                SELECT sv.track_id, sv.hub, cube_distance(sv.vec, song_query_vector(seed_keys)) AS distance
                FROM song_vectors sv
                ORDER BY sv.vec <-> song_query_vector(seed_keys)
                LIMIT greatest(200, (n + cardinality(seed_keys)) * 5)
            ), scored AS (
                SELECT t.key, t.title, t.artist, nn.distance,
                       (q.qn * q.qn + run.m * run.m - nn.distance * nn.distance) / (2 * greatest(q.qn, 1e-12))
                         - greatest(variety, 0) * coalesce(nn.hub, 0) AS score
                FROM nn JOIN tracks t ON t.id = nn.track_id CROSS JOIN q CROSS JOIN run
                WHERE NOT (t.key = ANY(seed_keys))
            ), ranked AS (
                SELECT scored.*, row_number() OVER (PARTITION BY lower(scored.artist) ORDER BY scored.score DESC)
                       AS artist_rank
                FROM scored
            )
            SELECT key, title, artist, distance, score FROM ranked
            WHERE max_per_artist IS NULL OR artist_rank <= max_per_artist
            ORDER BY score DESC
            LIMIT n
        $$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE song_vectors ADD COLUMN IF NOT EXISTS hub real")
    op.execute(
        """
        COMMENT ON COLUMN song_vectors.hub IS
        'Hubness: the song''s mean score over the 10 queries that score it highest (NULL: trained before 0005).'
        """
    )
    # score = the inner product with the unit query direction, recovered from the cube distance d to the query q:
    # |q - v|^2 = |q|^2 + M^2 - 2 q.v, where M is the item norm of the serving run (every item vector has norm M).
    op.execute(RADIO_VARIETY)
    op.execute(
        """
        COMMENT ON FUNCTION radio(text[], integer, integer, double precision) IS
        'A radio playlist with variety (0 = as radio(), 0.25 to 0.5 = fewer of the songs that open every radio): '
        'the nearest candidates re-ranked by score - variety * hub, seeds excluded, at most max_per_artist songs '
        'per artist (NULL = no limit). Uses the GiST index on song_vectors.vec.'
        """
    )
    op.execute("GRANT EXECUTE ON FUNCTION radio(text[], integer, integer, double precision) TO marconi_reader")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS radio(text[], integer, integer, double precision)")
    op.execute("ALTER TABLE song_vectors DROP COLUMN IF EXISTS hub")
