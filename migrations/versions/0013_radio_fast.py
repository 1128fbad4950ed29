"""Radio at speed (issue #14): the same radio() answers, with less work per candidate.

auto_explain on radio() at 100k synthetic songs (bench/bench_radio.py) found two costs that did not depend on the
catalogue's size but on the ~500 candidates a radio scores:

* the co-occurrence CTE named the seed giving each neighbour the most weight with ``array_agg(... ORDER BY ...)``,
  an ordered aggregate that starts a sort of its own for every one of the ~300 neighbours (about 40 % of the
  function). One sort of all rows (``DISTINCT ON`` with a window sum) gives the same weight and the same name;
* the per-artist ranking sorted every candidate by its folded artist name even when ``max_per_artist`` is NULL,
  the default. The top n is now taken straight from the scores then; the artist-partitioned branch runs only when
  a cap is asked (each branch carries a one-time filter on ``max_per_artist``, so only one of them executes).

The distance to the query is computed once per candidate (it was computed for the distance and again for the
score). Scores, ties, reasons and filters are unchanged (tests/db/test_radio_fast.py compares with the 0011 radio).

At a million songs the kNN step itself was the cost: ``radio_candidates_near`` now reads the serving run's IVFFlat
index when it has one (runs of at least marconi.db.ann.IVF_MIN_ROWS songs get it at build time), probing
``ef_search / 40`` lists, else HNSW as before, else the exact cube index. pg_prewarm is installed when the server
has it and the migrating role may, so that `marconi serve` can load the kNN indexes into shared buffers.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from pathlib import Path

from alembic import op
from alembic.util import load_python_file

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _migration(file_name: str):
    """Load an earlier revision's module (revision files are not importable by name)."""
    return load_python_file(Path(__file__).parent, file_name)


_V0011 = _migration("0011_artist_tag_radio.py")
SIGNATURE = _V0011.SIGNATURE
EASY_BONUS = _V0011.EASY_BONUS
HARD_PENALTY = _V0011.HARD_PENALTY

PROBES_PER_EF = 40  # IVFFlat probes = ef_search / 40: the default ef_search 400 probes 10 lists (docs/benchmarks.md)

CANDIDATES_NEAR = f"""
CREATE OR REPLACE FUNCTION radio_candidates_near(q cube, k integer, exact boolean DEFAULT false,
                                                 ef_search integer DEFAULT 400)
RETURNS TABLE (run_id bigint, track_id bigint, distance double precision, hub real)
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    IF q IS NULL THEN
        RETURN;
    END IF;
    IF NOT exact AND to_regclass('song_vectors_hvec_ivf') IS NOT NULL THEN
        -- a large catalogue (marconi.db.ann): the IVFFlat index scores every list centroid, so the regions of
        -- seeds far apart are all probed; its expression carries the run's dimensions, hence EXECUTE
        PERFORM set_config('ivfflat.probes', greatest(1, ef_search / {PROBES_PER_EF})::text, true);
        RETURN QUERY EXECUTE format(
            'SELECT sv.run_id, sv.track_id, cube_distance(sv.vec, $1), sv.hub FROM song_vectors sv '
            'ORDER BY (sv.hvec::halfvec(%s)) <#> $2 LIMIT $3', cube_dim(q))
            USING q, marconi_cube_to_vector(q)::halfvec, k;
    ELSIF NOT exact AND to_regclass('song_vectors_hvec_hnsw') IS NOT NULL THEN
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
$fn$
"""

RADIO = f"""
CREATE OR REPLACE FUNCTION radio(seed_keys text[] DEFAULT '{{}}', n integer DEFAULT 25,
                                 max_per_artist integer DEFAULT NULL, variety double precision DEFAULT 0,
                                 exact boolean DEFAULT false, ef_search integer DEFAULT 400,
                                 exclude text[] DEFAULT '{{}}', artists text[] DEFAULT '{{}}',
                                 tags text[] DEFAULT '{{}}', mode text DEFAULT 'medium')
RETURNS TABLE (key text, title text, artist text, distance double precision, score double precision,
               run_id bigint, reason text)
LANGUAGE sql STABLE
SET enable_mergejoin = off SET enable_hashjoin = off
AS $$
    WITH m AS MATERIALIZED (  -- the mode's knobs (see the function's comment)
        SELECT CASE mode WHEN 'easy' THEN 2.0 WHEN 'hard' THEN 0.5 ELSE 1.0 END::float8 AS blend_factor,
               CASE mode WHEN 'hard' THEN least(1.0, variety + 0.5) ELSE variety END::float8 AS variety,
               CASE mode WHEN 'easy' THEN {EASY_BONUS} WHEN 'hard' THEN -{HARD_PENALTY} ELSE 0 END::float8 AS own,
               CASE mode WHEN 'hard' THEN 3 ELSE 1 END AS wide
    ), q AS MATERIALIZED (  -- computed once, not once per candidate
        SELECT v.vec, greatest(cube_distance(v.vec, cube(0.0)), 1e-12) AS qn
        FROM (SELECT radio_query_vector(seed_keys, artists, tags) AS vec) v
    ), knn AS MATERIALIZED (
        SELECT c.* FROM q, m, radio_candidates_near(
            q.vec,
            greatest(200, (n + cardinality(coalesce(seed_keys, '{{}}')))
                          * CASE WHEN max_per_artist IS NULL THEN 1 ELSE 4 END + 10) * m.wide,
            exact, ef_search) c
    ), run AS MATERIALIZED (  -- the run the candidates come from (one: they were read in one snapshot)
        SELECT r.id, coalesce((r.metrics->>'item_norm')::float8, 1.0) AS norm,
               coalesce((r.metrics->'radio'->>'blend')::float8, 0.0) * (SELECT blend_factor FROM m) AS blend
        FROM model_runs r WHERE r.id = (SELECT k.run_id FROM knn k LIMIT 1)
    ), seeds AS MATERIALIZED (
        SELECT sv.track_id, sv.qvec, t.title, marconi_fold(btrim(t.artist)) AS folded
        FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id
        WHERE t.key = ANY (coalesce(seed_keys, '{{}}')) AND sv.run_id = (SELECT id FROM run)
    ), asked_artists AS MATERIALIZED (
        SELECT av.artist AS folded, av.name, av.qvec FROM artist_vectors av
        WHERE av.artist = ANY (SELECT marconi_fold(btrim(a)) FROM unnest(coalesce(artists, '{{}}')) a)
          AND av.run_id = (SELECT id FROM run)
    ), asked_tags AS MATERIALIZED (
        SELECT g.id, g.name, tv.qvec FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id
        WHERE g.folded = ANY (SELECT marconi_fold(btrim(x)) FROM unnest(coalesce(tags, '{{}}')) x)
          AND tv.run_id = (SELECT id FROM run)
    ), anchors AS MATERIALIZED (  -- what "close to ..." may name
        SELECT s.title AS label, s.qvec FROM seeds s
        UNION ALL SELECT a.name, a.qvec FROM asked_artists a
        UNION ALL SELECT g.name || ' songs', g.qvec FROM asked_tags g
    ), own_artists AS MATERIALIZED (  -- the seeds' artists and the asked artists, folded
        SELECT s.folded FROM seeds s WHERE s.folded <> '' UNION SELECT a.folded FROM asked_artists a
    ), by_asked AS MATERIALIZED (  -- the asked artists' songs in the model: candidates, and co-occurrence sources
        SELECT sv.track_id, a.name, 1.0 / count(*) OVER (PARTITION BY a.folded) AS share
        FROM asked_artists a
        JOIN tracks t ON marconi_fold(btrim(t.artist)) = a.folded
        JOIN song_vectors sv ON sv.track_id = t.id AND sv.run_id = (SELECT id FROM run)
    ), co AS MATERIALIZED (  -- co-occurrence neighbours of the seeds (and, shared out, of the asked artists' songs):
                             -- summed weight, and the seed (or artist) giving the most; one sort for all of them
        SELECT DISTINCT ON (p.track_id) p.track_id, sum(p.w) OVER (PARTITION BY p.track_id) AS weight,
               p.label AS because
        FROM (SELECT sn.neighbour_id AS track_id, (sn.weight * src.share)::float8 AS w, src.label
              FROM song_neighbours sn
              JOIN (SELECT s.track_id, s.title AS label, 1.0::float8 AS share FROM seeds s
                    UNION ALL SELECT b.track_id, b.name, b.share FROM by_asked b) src ON src.track_id = sn.track_id
              WHERE sn.run_id = (SELECT id FROM run)) p
        ORDER BY p.track_id, p.w DESC
    ), dropped AS MATERIALIZED (
        SELECT lower(btrim(x)) AS name FROM unnest(coalesce(exclude, '{{}}')) x
    ), scored AS MATERIALIZED (
        SELECT t.key, t.title, t.artist, sv.run_id, d.distance, sv.vec,
               own.yes AS by_own, tagged.name AS tag,
               round(((q.qn * q.qn + run.norm * run.norm - d.distance ^ 2) / (2 * q.qn))::numeric, 6)::float8
                 + CASE WHEN run.blend > 0 THEN run.blend * ln(0.001 + coalesce(co.weight, 0)) ELSE 0 END
                 - coalesce(sv.exposure, 0)
                 - CASE WHEN m.variety > 0 THEN m.variety * sv.hub ELSE 0 END
                 + CASE WHEN own.yes OR (m.own > 0 AND tagged.name IS NOT NULL) THEN m.own ELSE 0 END AS score,
               CASE WHEN run.blend > 0 AND co.weight >= 0.01 THEN co.because END AS because
        FROM (  -- each candidate once, with its co-occurrence weight (grouped here: a join to co, hash joins off,
                -- would scan co once per candidate)
            SELECT c.track_id, max(c.weight) AS weight, max(c.because) AS because
            FROM (SELECT k.track_id, NULL::float8 AS weight, NULL::text AS because FROM knn k
                  UNION ALL SELECT x.track_id, x.weight, x.because FROM co x
                  UNION ALL SELECT b.track_id, NULL, NULL FROM by_asked b) c
            GROUP BY c.track_id) co
        JOIN song_vectors sv ON sv.track_id = co.track_id
        JOIN run ON run.id = sv.run_id
        JOIN tracks t ON t.id = sv.track_id
        CROSS JOIN q CROSS JOIN m
        CROSS JOIN LATERAL (SELECT cube_distance(sv.vec, q.vec) AS distance) d  -- once per candidate
        CROSS JOIN LATERAL (  -- folding every candidate's artist costs a function call each: only when it counts
            SELECT CASE WHEN m.own <> 0 OR EXISTS (SELECT 1 FROM asked_artists)
                        THEN marconi_fold(btrim(t.artist)) IN (SELECT o.folded FROM own_artists o)
                        ELSE false END AS yes) own
        LEFT JOIN LATERAL (SELECT g.name FROM track_tags tt JOIN asked_tags g ON g.id = tt.tag_id
                           WHERE tt.track_id = t.id ORDER BY g.name LIMIT 1) tagged ON true
        WHERE NOT (t.key = ANY (coalesce(seed_keys, '{{}}')))
          AND NOT (t.key = ANY (coalesce(exclude, '{{}}')))
          AND NOT EXISTS (SELECT 1 FROM dropped d WHERE d.name = lower(btrim(t.artist)) AND d.name <> '')
    ), top AS MATERIALIZED (  -- one of the two branches runs: no cap per artist (the default), or a cap
        (SELECT s.* FROM scored s
         WHERE max_per_artist IS NULL
         ORDER BY s.score DESC NULLS LAST, s.distance
         LIMIT n)
        UNION ALL
        (SELECT r.key, r.title, r.artist, r.run_id, r.distance, r.vec, r.by_own, r.tag, r.score, r.because
         FROM (SELECT s.*, row_number() OVER (PARTITION BY lower(btrim(s.artist))
                                              ORDER BY s.score DESC NULLS LAST, s.distance) AS artist_rank
               FROM scored s
               WHERE max_per_artist IS NOT NULL) r
         WHERE btrim(r.artist) = '' OR r.artist_rank <= max_per_artist
         ORDER BY r.score DESC NULLS LAST, r.distance
         LIMIT n)
    )
    SELECT top.key, top.title, top.artist, top.distance, round(top.score::numeric, 6)::float8, top.run_id,
           CASE WHEN top.by_own AND marconi_fold(btrim(top.artist)) IN (SELECT a.folded FROM asked_artists a)
                     THEN 'by ' || top.artist
                WHEN top.tag IS NOT NULL THEN 'tag: ' || top.tag
                WHEN top.because IS NOT NULL THEN 'often played with ' || top.because
                ELSE 'close to ' || (SELECT a.label FROM anchors a
                                     ORDER BY cube_distance(top.vec, a.qvec), a.label LIMIT 1) END
    FROM top
    ORDER BY top.score DESC NULLS LAST, top.distance
$$
"""


def upgrade() -> None:
    # same signatures: CREATE OR REPLACE keeps the comments and the reader's grants
    op.execute(CANDIDATES_NEAR)
    op.execute(RADIO)
    op.execute("""COMMENT ON FUNCTION radio_candidates_near(cube, integer, boolean, integer) IS
        'The k songs nearest to query vector q, with their run: IVFFlat (probes = ef_search / 40) when the serving '
        'run has it (a large catalogue), else HNSW (ef_search), else the exact cube GiST index.'""")
    # pg_prewarm lets `marconi serve` load the kNN indexes into shared buffers; it needs a superuser to install
    op.execute(
        """
        DO $$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_prewarm') THEN
            CREATE EXTENSION IF NOT EXISTS pg_prewarm;
          END IF;
        EXCEPTION WHEN insufficient_privilege THEN
          RAISE NOTICE 'pg_prewarm not installed (needs a superuser): marconi serve will not warm the kNN indexes';
        END $$
        """
    )


def downgrade() -> None:
    op.execute(_V0011.CANDIDATES_NEAR.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute(_V0011.RADIO.replace("CREATE FUNCTION radio(", "CREATE OR REPLACE FUNCTION radio(", 1))
    op.execute("""COMMENT ON FUNCTION radio_candidates_near(cube, integer, boolean, integer) IS
        'The k songs nearest to query vector q (HNSW when the serving run has it, else cube GiST), with their run.'""")
