"""Radio defined once: radio_candidates() and one radio() that the API and SQL users share.

Before this revision radio was written three times (Python, two SQL overloads). Now:

* ``radio_candidates(seed_keys, k, exact, ef_search)``: the k songs whose item vectors are nearest to the seeds'
  query vector, with the run that wrote them. It uses pgvector's HNSW index when the serving run has one (unless
  ``exact``), else the cube GiST index; both order by ``... LIMIT k`` so an index drives the scan.
* ``radio(seed_keys, n, max_per_artist, variety, exact, ef_search)``: candidates → scores → variety re-rank →
  seeds dropped → artist cap → the top n, each row labelled with its model run. The API calls this function.

Every row of one call comes from one snapshot of song_vectors, so one model run.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from pathlib import Path

from alembic import op
from alembic.util import load_python_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CANDIDATES = """
CREATE FUNCTION radio_candidates(seed_keys text[], k integer, exact boolean DEFAULT false,
                                 ef_search integer DEFAULT 400)
RETURNS TABLE (run_id bigint, track_id bigint, distance double precision, hub real)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q cube := song_query_vector(seed_keys);
BEGIN
    IF q IS NULL THEN
        RETURN;
    END IF;
    IF NOT exact AND to_regclass('song_vectors_hvec_hnsw') IS NOT NULL THEN
        -- HNSW returns at most ef_search rows: ask for at least k
        PERFORM set_config('hnsw.ef_search', least(greatest(k, ef_search), 1000)::text, true);
        RETURN QUERY
            SELECT sv.run_id, sv.track_id, cube_distance(sv.vec, q), sv.hub
            FROM song_vectors sv
            ORDER BY sv.hvec <#> marconi_cube_to_vector(q)
            LIMIT k;
    ELSE
        RETURN QUERY
            SELECT sv.run_id, sv.track_id, cube_distance(sv.vec, q), sv.hub
            FROM song_vectors sv
            ORDER BY sv.vec <-> q
            LIMIT k;
    END IF;
END
$$
"""

# score: the inner product with the unit query direction, recovered from the cube distance d to the query q:
# |q - v|^2 = |q|^2 + M^2 - 2 q.v, where M is the item norm of the run (every item vector has norm M).
RADIO = """
CREATE FUNCTION radio(seed_keys text[], n integer DEFAULT 25, max_per_artist integer DEFAULT NULL,
                      variety double precision DEFAULT 0, exact boolean DEFAULT false,
                      ef_search integer DEFAULT 400)
RETURNS TABLE (key text, title text, artist text, distance double precision, score double precision,
               run_id bigint)
LANGUAGE sql STABLE AS $$
    WITH cand AS MATERIALIZED (
        SELECT c.* FROM radio_candidates(
            seed_keys,
            CASE WHEN variety > 0
                 THEN greatest(200, (n + cardinality(seed_keys)) * CASE WHEN max_per_artist IS NULL THEN 1 ELSE 4 END
                                    + 10)
                 ELSE (n + cardinality(seed_keys)) * CASE WHEN max_per_artist IS NULL THEN 1 ELSE 4 END + 10
            END,
            exact, ef_search) c
    ), q AS MATERIALIZED (  -- computed once, not once per candidate
        SELECT greatest(cube_distance(song_query_vector(seed_keys), cube(0.0)), 1e-12) AS qn
    ), run AS MATERIALIZED (  -- the run the candidates come from (one: they were read in one snapshot)
        SELECT r.id, coalesce((r.metrics->>'item_norm')::float8, 1.0) AS norm
        FROM model_runs r WHERE r.id = (SELECT c.run_id FROM cand c LIMIT 1)
    ), scored AS (
        SELECT t.key, t.title, t.artist, c.distance, c.run_id,
               round(((q.qn * q.qn + run.norm * run.norm - c.distance * c.distance) / (2 * q.qn))::numeric, 6)::float8
                 - CASE WHEN variety > 0 THEN variety * c.hub ELSE 0 END AS score
        FROM cand c
        JOIN run ON run.id = c.run_id
        JOIN tracks t ON t.id = c.track_id
        CROSS JOIN q
        WHERE NOT (t.key = ANY (seed_keys))
    ), ranked AS (
        SELECT s.*, row_number() OVER (PARTITION BY lower(btrim(s.artist))
                                       ORDER BY s.score DESC NULLS LAST, s.distance) AS artist_rank
        FROM scored s
    )
    SELECT key, title, artist, distance, round(score::numeric, 6)::float8, run_id FROM ranked
    WHERE max_per_artist IS NULL OR btrim(artist) = '' OR artist_rank <= max_per_artist
    ORDER BY score DESC NULLS LAST, distance
    LIMIT n
$$
"""

COMMENT = """
COMMENT ON FUNCTION radio(text[], integer, integer, double precision, boolean, integer) IS
'A radio playlist of n songs for the seed track keys, best first: the songs whose item vectors score highest '
'against the sum of the seeds'' input vectors, seeds left out, at most max_per_artist per artist (NULL: no limit). '
'variety (0 to 1; 0.25 to 0.5 suggested) re-ranks the 200 nearest by score - variety * hub so the songs that open '
'every radio give way (score is NULL for runs trained without hub scores). exact uses the cube GiST index instead '
'of HNSW; ef_search is the HNSW candidate list size. run_id is the model run every row comes from. '
'The web API answers with this same function.'
"""


def upgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS radio(text[], integer, integer)")
    op.execute("DROP FUNCTION IF EXISTS radio(text[], integer, integer, double precision)")
    op.execute(
        """
        DO $$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
            CREATE FUNCTION marconi_cube_to_vector(c cube) RETURNS vector
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS
            'SELECT array_agg(cube_ll_coord(c, i) ORDER BY i)::real[]::vector FROM generate_series(1, cube_dim(c)) i';
          END IF;
        END $$
        """
    )
    op.execute(CANDIDATES)
    op.execute(RADIO)
    op.execute(COMMENT)
    op.execute("""COMMENT ON FUNCTION radio_candidates(text[], integer, boolean, integer) IS
        'The k songs nearest to the seeds'' query vector (HNSW when the serving run has it, else cube GiST), '
        'with the model run that wrote them.'""")
    for signature in ("radio(text[], integer, integer, double precision, boolean, integer)",
                      "radio_candidates(text[], integer, boolean, integer)"):
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO marconi_reader")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS radio(text[], integer, integer, double precision, boolean, integer)")
    op.execute("DROP FUNCTION IF EXISTS radio_candidates(text[], integer, boolean, integer)")
    op.execute("DROP FUNCTION IF EXISTS marconi_cube_to_vector(cube)")
    # the two radio() overloads that revisions 0001 and 0005 created
    for revision_file, name in (("0001_core.py", "RADIO"), ("0005_song_hubness.py", "RADIO_VARIETY")):
        op.execute(getattr(_migration(revision_file), name))
    op.execute("GRANT EXECUTE ON FUNCTION radio(text[], integer, integer, double precision) TO marconi_reader")


def _migration(file_name: str):
    """Load an earlier revision's module (revision files are not importable by name)."""
    return load_python_file(Path(__file__).parent, file_name)
