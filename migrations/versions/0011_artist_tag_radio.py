"""Artist radio, tag radio and modes (issue #14): radio() also takes artist names, tag names and a mode.

* ``tags(id, name)`` and ``track_tags(track_id, tag_id)``: the songs' tags (yes_small's Last.fm tags), filled by
  the yes importer from tags.txt / tag_hash.txt;
* ``artist_vectors(run_id, artist, name, songs, qvec)`` and ``tag_vectors(run_id, tag_id, songs, qvec)``: per song
  run, the unit mean of the input vectors of the artist's (the tag's) songs in the model, written and swapped with
  the run like song_vectors. ``artist`` is the folded name (``marconi_fold(btrim(tracks.artist))``), ``name`` its
  most common spelling;
* ``radio_query_vector(seed_keys, artists, tags)``: the sum of the seeds', artists' and tags' unit query vectors;
  ``radio_candidates_near(q, k, exact, ef_search)``: the k songs nearest to any query vector;
* ``radio(seed_keys, n, max_per_artist, variety, exact, ef_search, exclude, artists, tags, mode)``: the one radio,
  now from any mix of seed songs, artist names and tag names (any case and accents), in one of three modes:

  - ``easy`` stays close to the seeds: the co-occurrence blend counts twice, and songs by the seeds' or asked
    artists, or carrying an asked tag, gain ``EASY_BONUS`` (2);
  - ``medium`` (default): exactly the 0010 radio;
  - ``hard`` wanders: three times the candidates, half the blend, variety + 0.5 (at most 1), and songs by the seeds'
    or asked artists lose ``HARD_PENALTY`` (1).

  New reasons: "by <artist>" for a song of an asked artist, "tag: <tag>" for one carrying an asked tag, and
  "close to <artist>" / "close to <tag> songs" when an artist or a tag vector scores it highest.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from pathlib import Path

from alembic import op
from alembic.util import load_python_file

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SIGNATURE = ("radio(text[], integer, integer, double precision, boolean, integer, text[], text[], text[], text)")
OLD_SIGNATURE = "radio(text[], integer, integer, double precision, boolean, integer, text[])"
EASY_BONUS = 2.0  # score units (inner products with the unit query), added in easy mode
HARD_PENALTY = 1.0  # subtracted in hard mode

QUERY_VECTOR = """
CREATE FUNCTION radio_query_vector(seed_keys text[], artists text[] DEFAULT '{}', tags text[] DEFAULT '{}')
RETURNS cube LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT cube(array_agg(c ORDER BY i))
    FROM (
        SELECT i, sum(cube_ll_coord(parts.v, i)) AS c
        FROM (
            SELECT sv.qvec AS v FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id
            WHERE t.key = ANY (coalesce(seed_keys, '{}'))
            UNION ALL
            SELECT av.qvec FROM artist_vectors av
            WHERE av.artist = ANY (SELECT marconi_fold(btrim(a)) FROM unnest(coalesce(artists, '{}')) a)
            UNION ALL
            SELECT tv.qvec FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id
            WHERE g.folded = ANY (SELECT marconi_fold(btrim(x)) FROM unnest(coalesce(tags, '{}')) x)
        ) parts
        CROSS JOIN LATERAL generate_series(1, cube_dim(parts.v)) AS i
        GROUP BY i
    ) coords
$$
"""

CANDIDATES_NEAR = """
CREATE FUNCTION radio_candidates_near(q cube, k integer, exact boolean DEFAULT false, ef_search integer DEFAULT 400)
RETURNS TABLE (run_id bigint, track_id bigint, distance double precision, hub real)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF q IS NULL THEN
        RETURN;
    END IF;
    IF NOT exact AND to_regclass('song_vectors_hvec_hnsw') IS NOT NULL THEN
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

RADIO = f"""
CREATE FUNCTION radio(seed_keys text[] DEFAULT '{{}}', n integer DEFAULT 25, max_per_artist integer DEFAULT NULL,
                      variety double precision DEFAULT 0, exact boolean DEFAULT false,
                      ef_search integer DEFAULT 400, exclude text[] DEFAULT '{{}}',
                      artists text[] DEFAULT '{{}}', tags text[] DEFAULT '{{}}', mode text DEFAULT 'medium')
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
                             -- summed weight, and the seed (or artist) giving the most
        SELECT sn.neighbour_id AS track_id, sum(sn.weight * src.share)::float8 AS weight,
               (array_agg(src.label ORDER BY sn.weight * src.share DESC))[1] AS because
        FROM song_neighbours sn
        JOIN (SELECT s.track_id, s.title AS label, 1.0::float8 AS share FROM seeds s
              UNION ALL SELECT b.track_id, b.name, b.share FROM by_asked b) src ON src.track_id = sn.track_id
        WHERE sn.run_id = (SELECT id FROM run)
        GROUP BY sn.neighbour_id
    ), dropped AS MATERIALIZED (
        SELECT lower(btrim(x)) AS name FROM unnest(coalesce(exclude, '{{}}')) x
    ), scored AS (
        SELECT t.key, t.title, t.artist, sv.run_id, cube_distance(sv.vec, q.vec) AS distance, sv.vec,
               own.yes AS by_own, tagged.name AS tag,
               round(((q.qn * q.qn + run.norm * run.norm - cube_distance(sv.vec, q.vec) ^ 2)
                      / (2 * q.qn))::numeric, 6)::float8
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
        CROSS JOIN LATERAL (  -- folding every candidate's artist costs a function call each: only when it counts
            SELECT CASE WHEN m.own <> 0 OR EXISTS (SELECT 1 FROM asked_artists)
                        THEN marconi_fold(btrim(t.artist)) IN (SELECT o.folded FROM own_artists o)
                        ELSE false END AS yes) own
        LEFT JOIN LATERAL (SELECT g.name FROM track_tags tt JOIN asked_tags g ON g.id = tt.tag_id
                           WHERE tt.track_id = t.id ORDER BY g.name LIMIT 1) tagged ON true
        WHERE NOT (t.key = ANY (coalesce(seed_keys, '{{}}')))
          AND NOT (t.key = ANY (coalesce(exclude, '{{}}')))
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

COMMENT = f"""
COMMENT ON FUNCTION {SIGNATURE} IS
'A radio playlist of n songs, best first, with the reason each song is there, for any mix of seed track keys, '
'artist names and tag names (any case and accents; see radio_query_vector). Score: the song2vec score against the '
'sum of the seeds'', artists'' and tags'' unit query vectors, plus the run''s blend x ln(0.001 + how often the song '
'is played near the seed songs), minus the song''s exposure offset. mode: easy (blend x2, songs by the seeds'' or '
'asked artists or with an asked tag +{EASY_BONUS}), medium (as given), hard (3x the candidates, blend x0.5, variety '
'+0.5, songs by the seeds'' or asked artists -{HARD_PENALTY}). Seeds and exclude (track keys or artist names, any '
'case) are left out; at most max_per_artist per artist (NULL: no limit). run_id is the model run every row comes from. '
'The web API answers with this same function.'
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tags (
            id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name   text NOT NULL UNIQUE,
            folded text GENERATED ALWAYS AS (marconi_fold(name)) STORED
        )
        """
    )
    op.execute("CREATE INDEX tags_folded ON tags (folded)")
    op.execute("CREATE INDEX tags_folded_trgm ON tags USING gin (folded gin_trgm_ops)")
    op.execute(
        """
        CREATE TABLE track_tags (
            track_id bigint NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
            tag_id   integer NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
            PRIMARY KEY (track_id, tag_id)
        )
        """
    )
    op.execute("CREATE INDEX track_tags_tag ON track_tags (tag_id)")
    op.execute("COMMENT ON TABLE tags IS 'Song tags (yes_small: Last.fm tags); folded: lower case, no accents.'")
    op.execute("COMMENT ON TABLE track_tags IS 'Which song carries which tag.'")
    # artists are looked up by folded name: exactly (radio) and by trigrams (suggestions, closest names)
    op.execute("CREATE INDEX tracks_artist_folded ON tracks (marconi_fold(btrim(artist)))")
    op.execute("CREATE INDEX tracks_artist_folded_trgm ON tracks "
               "USING gin (marconi_fold(btrim(artist)) gin_trgm_ops)")
    op.execute(
        """
        CREATE TABLE artist_vectors (
            artist text PRIMARY KEY,
            run_id bigint NOT NULL,
            name   text NOT NULL,
            songs  integer NOT NULL,
            qvec   cube NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE tag_vectors (
            tag_id integer PRIMARY KEY,
            run_id bigint NOT NULL,
            songs  integer NOT NULL,
            qvec   cube NOT NULL
        )
        """
    )
    op.execute("""COMMENT ON TABLE artist_vectors IS
        'Per song run: each artist''s query vector, the unit mean of its songs'' unit input vectors (artist: folded '
        'name, name: its most common spelling, songs: its songs in the model). Swapped in with song_vectors.'""")
    op.execute("""COMMENT ON TABLE tag_vectors IS
        'Per song run: each tag''s query vector, the unit mean of its songs'' unit input vectors. Swapped in with '
        'song_vectors.'""")
    for table in ("tags", "track_tags", "artist_vectors", "tag_vectors"):
        op.execute(f"GRANT SELECT ON {table} TO marconi_reader")
    op.execute(QUERY_VECTOR)
    op.execute(CANDIDATES_NEAR)
    op.execute(f"DROP FUNCTION IF EXISTS {OLD_SIGNATURE}")
    op.execute(RADIO)
    op.execute(COMMENT)
    op.execute("""COMMENT ON FUNCTION radio_query_vector(text[], text[], text[]) IS
        'Query vector for a radio: the sum of the unit query vectors of the seed songs, the artists and the tags '
        '(names in any case and accents); NULL when none is known to the serving model.'""")
    op.execute("""COMMENT ON FUNCTION radio_candidates_near(cube, integer, boolean, integer) IS
        'The k songs nearest to query vector q (HNSW when the serving run has it, else cube GiST), with their run.'""")
    for signature in (SIGNATURE, "radio_query_vector(text[], text[], text[])",
                      "radio_candidates_near(cube, integer, boolean, integer)"):
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO marconi_reader")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    op.execute("DROP FUNCTION IF EXISTS radio_candidates_near(cube, integer, boolean, integer)")
    op.execute("DROP FUNCTION IF EXISTS radio_query_vector(text[], text[], text[])")
    radio_v2 = _migration("0010_radio_v2.py")
    op.execute(radio_v2.RADIO)
    op.execute(radio_v2.COMMENT)
    op.execute(f"GRANT EXECUTE ON FUNCTION {OLD_SIGNATURE} TO marconi_reader")
    for table in ("artist_vectors_staging", "tag_vectors_staging", "artist_vectors", "tag_vectors",
                  "track_tags", "tags"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP INDEX IF EXISTS tracks_artist_folded_trgm")
    op.execute("DROP INDEX IF EXISTS tracks_artist_folded")


def _migration(file_name: str):
    """Load an earlier revision's module (revision files are not importable by name)."""
    return load_python_file(Path(__file__).parent, file_name)
