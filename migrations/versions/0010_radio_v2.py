"""Radio v2: varied by default, explained, steerable (issue #14).

radio() now ranks by

    score = ip + blend · ln(0.001 + Σ_seeds neighbour weight) − exposure − variety · hub

* ``ip``: as before, the seeds' summed unit input vectors against the song's output vector (per unit query);
* ``song_neighbours``: each song's top co-occurring songs in the training playlists (±5 positions, 1/distance,
  normalised by the song's total), written and swapped with the run like song_vectors. The seeds' neighbours join
  the nearest songs as candidates, so a song often played with a seed can enter even when the vectors miss it.
  ``blend`` is the run's (metrics → radio → blend; 0 for runs without it);
* ``song_vectors.exposure``: the offset that keeps a song under the run's exposure cap of all one-seed radios
  (0 or NULL: not capped), calibrated at training time (marconi.recommenders.exposure);
* ``variety`` still subtracts the CSLS hub score, on top of the default.

New arguments and columns: ``exclude`` (track keys or artist names, case-insensitive, to leave out) and ``reason``
("often played with <seed title>" when the co-occurrence term counts, else "close to <title of the seed whose
vector scores the song highest>").

Every row still comes from one run: the neighbours are read with ``run_id`` = the candidates' run, in the same
statement, and a swap replaces song_vectors and song_neighbours in one transaction.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from pathlib import Path

from alembic import op
from alembic.util import load_python_file

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SIGNATURE = "radio(text[], integer, integer, double precision, boolean, integer, text[])"
OLD_SIGNATURE = "radio(text[], integer, integer, double precision, boolean, integer)"

# score: the inner product with the unit query direction, recovered from the cube distance d to the query q:
# |q - v|^2 = |q|^2 + M^2 - 2 q.v, where M is the item norm of the run (every item vector has norm M). A seed's own
# closeness to a song uses the same identity with |q| = 1 (each seed's query vector is a unit vector).
RADIO = """
CREATE FUNCTION radio(seed_keys text[], n integer DEFAULT 25, max_per_artist integer DEFAULT NULL,
                      variety double precision DEFAULT 0, exact boolean DEFAULT false,
                      ef_search integer DEFAULT 400, exclude text[] DEFAULT '{}')
RETURNS TABLE (key text, title text, artist text, distance double precision, score double precision,
               run_id bigint, reason text)
LANGUAGE sql STABLE
-- a few hundred candidates are looked up by primary key; without these the planner, which cannot see how few
-- there are, sorts or hashes whole tables (18 ms instead of 9 ms at 100k songs, bench/bench_radio.py)
SET enable_mergejoin = off SET enable_hashjoin = off
AS $$
    WITH knn AS MATERIALIZED (
        SELECT c.* FROM radio_candidates(
            seed_keys,
            greatest(200, (n + cardinality(seed_keys)) * CASE WHEN max_per_artist IS NULL THEN 1 ELSE 4 END + 10),
            exact, ef_search) c
    ), run AS MATERIALIZED (  -- the run the candidates come from (one: they were read in one snapshot)
        SELECT r.id, coalesce((r.metrics->>'item_norm')::float8, 1.0) AS norm,
               coalesce((r.metrics->'radio'->>'blend')::float8, 0.0) AS blend
        FROM model_runs r WHERE r.id = (SELECT k.run_id FROM knn k LIMIT 1)
    ), q AS MATERIALIZED (  -- computed once, not once per candidate
        SELECT v.vec, greatest(cube_distance(v.vec, cube(0.0)), 1e-12) AS qn
        FROM (SELECT song_query_vector(seed_keys) AS vec) v
    ), seeds AS MATERIALIZED (
        SELECT sv.track_id, sv.qvec, t.title
        FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id
        WHERE t.key = ANY (seed_keys) AND sv.run_id = (SELECT id FROM run)
    ), co AS MATERIALIZED (  -- the seeds' co-occurrence neighbours: summed weight, and the seed giving the most
        SELECT sn.neighbour_id AS track_id, sum(sn.weight)::float8 AS weight,
               (array_agg(s.title ORDER BY sn.weight DESC))[1] AS because
        FROM song_neighbours sn JOIN seeds s ON s.track_id = sn.track_id
        WHERE sn.run_id = (SELECT id FROM run)
        GROUP BY sn.neighbour_id
    ), dropped AS MATERIALIZED (
        SELECT lower(btrim(x)) AS name FROM unnest(coalesce(exclude, '{}')) x
    ), scored AS (
        SELECT t.key, t.title, t.artist, sv.run_id, cube_distance(sv.vec, q.vec) AS distance, sv.vec,
               round(((q.qn * q.qn + run.norm * run.norm - cube_distance(sv.vec, q.vec) ^ 2)
                      / (2 * q.qn))::numeric, 6)::float8
                 + CASE WHEN run.blend > 0 THEN run.blend * ln(0.001 + coalesce(co.weight, 0)) ELSE 0 END
                 - coalesce(sv.exposure, 0)
                 - CASE WHEN variety > 0 THEN variety * sv.hub ELSE 0 END AS score,
               CASE WHEN run.blend > 0 AND co.weight >= 0.01 THEN co.because END AS because
        FROM (SELECT k.track_id FROM knn k UNION SELECT co.track_id FROM co) cand
        JOIN song_vectors sv ON sv.track_id = cand.track_id
        JOIN run ON run.id = sv.run_id
        JOIN tracks t ON t.id = sv.track_id
        LEFT JOIN co ON co.track_id = sv.track_id
        CROSS JOIN q
        WHERE NOT (t.key = ANY (seed_keys))
          AND NOT (t.key = ANY (coalesce(exclude, '{}')))
          AND NOT EXISTS (SELECT 1 FROM dropped d WHERE d.name = lower(btrim(t.artist)) AND d.name <> '')
    ), ranked AS (
        SELECT s.*, row_number() OVER (PARTITION BY lower(btrim(s.artist))
                                       ORDER BY s.score DESC NULLS LAST, s.distance) AS artist_rank
        FROM scored s
    ), top AS MATERIALIZED (
        SELECT * FROM ranked
        WHERE max_per_artist IS NULL OR btrim(artist) = '' OR artist_rank <= max_per_artist
        ORDER BY score DESC NULLS LAST, distance
        LIMIT n
    )
    SELECT top.key, top.title, top.artist, top.distance, round(top.score::numeric, 6)::float8, top.run_id,
           CASE WHEN top.because IS NOT NULL THEN 'often played with ' || top.because
                ELSE 'close to ' || (SELECT s.title FROM seeds s
                                     ORDER BY cube_distance(top.vec, s.qvec), s.title LIMIT 1) END
    FROM top
    ORDER BY top.score DESC NULLS LAST, top.distance
$$
"""

COMMENT = f"""
COMMENT ON FUNCTION {SIGNATURE} IS
'A radio playlist of n songs for the seed track keys, best first, with the reason each song is there. Score: '
'the song2vec score against the sum of the seeds'' input vectors, plus the run''s blend x ln(0.001 + how often the '
'song is played near the seeds, from song_neighbours), minus the song''s exposure offset (which keeps any song out '
'of most radios). Seeds and exclude (track keys or artist names, any case) are left out; at most max_per_artist '
'per artist (NULL: no limit). variety (0 to 1) also subtracts variety * hub (CSLS); score is NULL with variety for '
'runs trained without hub scores. exact uses the cube GiST index instead of HNSW; ef_search is the HNSW candidate '
'list size. run_id is the model run every row comes from. The web API answers with this same function.'
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE song_neighbours (
            run_id       bigint NOT NULL,
            track_id     bigint NOT NULL,
            neighbour_id bigint NOT NULL,
            weight       real NOT NULL,
            PRIMARY KEY (track_id, neighbour_id)
        )
        """
    )
    op.execute("""COMMENT ON TABLE song_neighbours IS
        'Per song run: each song''s most co-occurring songs in the training playlists (weight: share of the song''s '
        'co-occurrences, +-5 positions weighted 1/distance). Swapped in with song_vectors.'""")
    op.execute("GRANT SELECT ON song_neighbours TO marconi_reader")
    op.execute("ALTER TABLE song_vectors ADD COLUMN IF NOT EXISTS exposure real")
    op.execute("""COMMENT ON COLUMN song_vectors.exposure IS
        'Subtracted from the song''s radio score so it opens at most the run''s exposure cap of all radios '
        '(0 or NULL: not capped; NULL for runs trained before 0010).'""")
    op.execute(f"DROP FUNCTION IF EXISTS {OLD_SIGNATURE}")
    op.execute(RADIO)
    op.execute(COMMENT)
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO marconi_reader")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    radio_once = _migration("0006_radio_once.py")
    op.execute(radio_once.RADIO)
    op.execute(radio_once.COMMENT)
    op.execute(f"GRANT EXECUTE ON FUNCTION {OLD_SIGNATURE} TO marconi_reader")
    op.execute("ALTER TABLE song_vectors DROP COLUMN IF EXISTS exposure")
    op.execute("DROP TABLE IF EXISTS song_neighbours_staging")
    op.execute("DROP TABLE IF EXISTS song_neighbours")


def _migration(file_name: str):
    """Load an earlier revision's module (revision files are not importable by name)."""
    return load_python_file(Path(__file__).parent, file_name)
