"""Radio at 100k songs, faster again (issue #14): the same answers with no planning per call and fewer lookups.

Profiled at 100k synthetic songs (bench/bench_radio.py; auto_explain, EXPLAIN ANALYZE of the body as a prepared
statement, perf on the backend), four costs came before the candidates' own work:

* planning on every call: radio()'s body (about 1 ms), radio_query_vector's and radio_candidates_near's statements
  were planned afresh each time (custom plans). radio() now runs with ``plan_cache_mode = force_generic_plan``, so
  the session keeps one plan of each statement, nested functions included;
* with a generic plan, radio_candidates_near's HNSW query called ``marconi_cube_to_vector(q)`` once per returned row
  (the sort key is projected for every row): it is now an InitPlan, ``(SELECT marconi_cube_to_vector(q))``,
  computed once;
* every candidate's track row was read to filter it, though only the best n are kept: in the plain case (medium
  mode, no asked artists, no cap per artist: no artist can change a score or a rank) the candidates are sorted by
  score first and their tracks are read best first until n pass the filters;
* the API's own statement around radio() (seeds, artists, tags and excludes described, marconi/db/songs.py) was
  planned on every request too (about 0.5 ms): it is now the function radio_answer(), planned once per session.

Smaller ones: the kNN step's distance is reused for its candidates (cube_distance only for the others, once each);
the per-candidate tag lookup runs only when tags were asked; the excluded artists are one array, not a join.
Scores, ties, reasons and filters are unchanged (tests/db/test_radio_fast.py compares every row with 0013's radio).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from pathlib import Path

from alembic import op
from alembic.util import load_python_file

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _migration(file_name: str):
    """Load an earlier revision's module (revision files are not importable by name)."""
    return load_python_file(Path(__file__).parent, file_name)


_V0013 = _migration("0013_radio_fast.py")
EASY_BONUS = _V0013.EASY_BONUS
HARD_PENALTY = _V0013.HARD_PENALTY

# 0013's function with the HNSW sort key computed once: an InitPlan, not a call per returned row
_ONCE_PER_ROW = "ORDER BY sv.hvec <#> marconi_cube_to_vector(q)"
CANDIDATES_NEAR = _V0013.CANDIDATES_NEAR.replace(
    _ONCE_PER_ROW, "ORDER BY sv.hvec <#> (SELECT marconi_cube_to_vector(q))  -- once, not once per row", 1)
if CANDIDATES_NEAR == _V0013.CANDIDATES_NEAR:
    raise RuntimeError("0014 did not find 0013's HNSW query to change: write radio_candidates_near out in 0014")

RADIO = f"""
CREATE OR REPLACE FUNCTION radio(seed_keys text[] DEFAULT '{{}}', n integer DEFAULT 25,
                                 max_per_artist integer DEFAULT NULL, variety double precision DEFAULT 0,
                                 exact boolean DEFAULT false, ef_search integer DEFAULT 400,
                                 exclude text[] DEFAULT '{{}}', artists text[] DEFAULT '{{}}',
                                 tags text[] DEFAULT '{{}}', mode text DEFAULT 'medium')
RETURNS TABLE (key text, title text, artist text, distance double precision, score double precision,
               run_id bigint, reason text)
LANGUAGE sql STABLE
SET enable_mergejoin = off SET enable_hashjoin = off SET plan_cache_mode = force_generic_plan
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
    ), dropped AS MATERIALIZED (  -- the artist names to leave out, in one array (most often empty)
        SELECT coalesce(array_agg(lower(btrim(x))) FILTER (WHERE lower(btrim(x)) <> ''), '{{}}') AS names
        FROM unnest(coalesce(exclude, '{{}}')) x
    ), cand AS MATERIALIZED (  -- each candidate once: its vector row, its distance, its score before the artist terms
        SELECT co.track_id, sv.run_id, d.distance, sv.vec,
               round(((q.qn * q.qn + run.norm * run.norm - d.distance ^ 2) / (2 * q.qn))::numeric, 6)::float8
                 + CASE WHEN run.blend > 0 THEN run.blend * ln(0.001 + coalesce(co.weight, 0)) ELSE 0 END
                 - coalesce(sv.exposure, 0)
                 - CASE WHEN m.variety > 0 THEN m.variety * sv.hub ELSE 0 END AS base,
               CASE WHEN run.blend > 0 AND co.weight >= 0.01 THEN co.because END AS because
        FROM (  -- the kNN candidates (with their distance), the co-occurrence neighbours, the asked artists' songs
            SELECT c.track_id, max(c.weight) AS weight, max(c.because) AS because, max(c.distance) AS distance
            FROM (SELECT k.track_id, NULL::float8 AS weight, NULL::text AS because, k.distance FROM knn k
                  UNION ALL SELECT x.track_id, x.weight, x.because, NULL FROM co x
                  UNION ALL SELECT b.track_id, NULL, NULL, NULL FROM by_asked b) c
            GROUP BY c.track_id) co
        JOIN song_vectors sv ON sv.track_id = co.track_id
        JOIN run ON run.id = sv.run_id
        CROSS JOIN q CROSS JOIN m
        CROSS JOIN LATERAL (SELECT coalesce(co.distance, cube_distance(sv.vec, q.vec)) AS distance OFFSET 0) d
    ), how AS MATERIALIZED (  -- plain: no candidate's artist changes its score or rank (medium mode, no asked
                              -- artists, no cap), so only the tracks of the best candidates are read
        SELECT m.own = 0 AND NOT EXISTS (SELECT 1 FROM asked_artists) AND max_per_artist IS NULL AS plain FROM m
    ), scored AS MATERIALIZED (  -- not plain: every candidate's track, its artist's and its tags' terms
        SELECT t.key, t.title, t.artist, c.run_id, c.distance, c.vec, own.yes AS by_own, tagged.name AS tag,
               c.base + CASE WHEN own.yes OR (m.own > 0 AND tagged.name IS NOT NULL) THEN m.own ELSE 0 END AS score,
               c.because
        FROM cand c
        JOIN tracks t ON t.id = c.track_id
        CROSS JOIN m
        CROSS JOIN LATERAL (  -- folding every candidate's artist costs a function call each: only when it counts
            SELECT CASE WHEN m.own <> 0 OR EXISTS (SELECT 1 FROM asked_artists)
                        THEN marconi_fold(btrim(t.artist)) IN (SELECT o.folded FROM own_artists o)
                        ELSE false END AS yes) own
        CROSS JOIN LATERAL (SELECT CASE WHEN EXISTS (SELECT 1 FROM asked_tags) THEN
                    (SELECT g.name FROM track_tags tt JOIN asked_tags g ON g.id = tt.tag_id
                     WHERE tt.track_id = t.id ORDER BY g.name LIMIT 1) END AS name OFFSET 0) tagged
        WHERE NOT (SELECT h.plain FROM how h)
          AND NOT (t.key = ANY (coalesce(seed_keys, '{{}}')))
          AND NOT (t.key = ANY (coalesce(exclude, '{{}}')))
          AND lower(btrim(t.artist)) <> ALL (CAST((SELECT d.names FROM dropped d) AS text[]))
    ), top AS MATERIALIZED (  -- one of three branches runs: plain, not plain without a cap, or a cap per artist
        (SELECT t.key, t.title, t.artist, c.run_id, c.distance, c.vec, false AS by_own,
                CASE WHEN EXISTS (SELECT 1 FROM asked_tags) THEN
                    (SELECT g.name FROM track_tags tt JOIN asked_tags g ON g.id = tt.tag_id
                     WHERE tt.track_id = t.id ORDER BY g.name LIMIT 1) END AS tag,
                c.base + 0 AS score, c.because
         FROM (SELECT * FROM cand ORDER BY base DESC NULLS LAST, distance) c  -- best first: stops after n
         JOIN tracks t ON t.id = c.track_id
         WHERE (SELECT h.plain FROM how h)
           AND NOT (t.key = ANY (coalesce(seed_keys, '{{}}')))
          AND NOT (t.key = ANY (coalesce(exclude, '{{}}')))
          AND lower(btrim(t.artist)) <> ALL (CAST((SELECT d.names FROM dropped d) AS text[]))
         ORDER BY c.base DESC NULLS LAST, c.distance
         LIMIT n)
        UNION ALL
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


# The API's radio question (marconi/db/songs.py) as a function, so that it too keeps one plan per session: as a
# statement sent with its values it was planned on every request (about 0.5 ms, a quarter of its CPU time)
ANSWER_SIGNATURE = ("radio_answer(text[], integer, integer, double precision, boolean, integer, text[], text[], "
                    "text[], text, integer)")
RADIO_ANSWER = """
CREATE OR REPLACE FUNCTION radio_answer(seed_keys text[], n integer, max_per_artist integer,
                                        variety double precision, exact boolean, ef_search integer,
                                        exclude text[], artist_names text[], tag_names text[], mode text,
                                        closest integer)
RETURNS TABLE (serving boolean, run_id bigint, has_artist_vectors boolean, has_tag_vectors boolean, hnsw boolean,
               seeds json, artists json, tags json, excluded json, playlist json)
LANGUAGE sql STABLE SET plan_cache_mode = force_generic_plan
AS $$
    WITH seeds AS (
        SELECT s.key, s.ord, t.title, t.artist, sv.run_id
        FROM unnest(seed_keys) WITH ORDINALITY AS s(key, ord)
        LEFT JOIN tracks t ON t.key = s.key
        LEFT JOIN song_vectors sv ON sv.track_id = t.id
    ), asked_artists AS (
        SELECT a.asked, a.ord, av.name, av.songs
        FROM unnest(artist_names) WITH ORDINALITY AS a(asked, ord)
        LEFT JOIN artist_vectors av ON av.artist = marconi_fold(btrim(a.asked))
    ), asked_tags AS (
        SELECT x.asked, x.ord, g.name, g.songs
        FROM unnest(tag_names) WITH ORDINALITY AS x(asked, ord)
        LEFT JOIN LATERAL (SELECT g.name, tv.songs FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id
                           WHERE g.folded = marconi_fold(btrim(x.asked))
                           ORDER BY tv.songs DESC, g.name LIMIT 1) g ON true
    ), excluded AS (  -- what each exclude entry names, matched as radio() matches it: a track key, else an artist
        SELECT x.value, x.ord, t.title, coalesce(t.artist, a.artist) AS artist,
               CASE WHEN t.key IS NOT NULL THEN 'song' WHEN a.artist IS NOT NULL THEN 'artist' ELSE 'unknown' END
                 AS kind
        FROM unnest(exclude) WITH ORDINALITY AS x(value, ord)
        LEFT JOIN tracks t ON t.key = x.value
        LEFT JOIN LATERAL (  -- the folded-artist index finds the candidates, radio()'s own test decides
            SELECT min(o.artist) AS artist FROM tracks o
            WHERE t.key IS NULL AND btrim(x.value) <> ''
              AND marconi_fold(btrim(o.artist)) = marconi_fold(btrim(x.value))
              AND lower(btrim(o.artist)) = lower(btrim(x.value))) a ON true
    ), all_known AS (
        SELECT NOT EXISTS (SELECT 1 FROM asked_artists WHERE name IS NULL)
               AND NOT EXISTS (SELECT 1 FROM asked_tags WHERE name IS NULL) AS yes
    )
    SELECT EXISTS (SELECT 1 FROM song_vectors) AS serving,
           (SELECT sv.run_id FROM song_vectors sv LIMIT 1) AS run_id,
           EXISTS (SELECT 1 FROM artist_vectors) AS has_artist_vectors,
           EXISTS (SELECT 1 FROM tag_vectors) AS has_tag_vectors,
           to_regclass('song_vectors_hvec_hnsw') IS NOT NULL AS hnsw,
           (SELECT json_agg(json_build_object('key', key, 'title', title, 'artist', artist, 'run_id', run_id)
                            ORDER BY ord) FROM seeds) AS seeds,
           (SELECT json_agg(json_build_object(
                       'asked', a.asked, 'name', a.name, 'songs', a.songs,
                       'closest', CASE WHEN a.name IS NULL THEN
                           (SELECT json_agg(c.name) FROM (
                               SELECT av.name FROM artist_vectors av
                               ORDER BY similarity(av.artist, marconi_fold(btrim(a.asked))) DESC, av.songs DESC,
                                        av.name
                               LIMIT closest) c) END) ORDER BY a.ord)
            FROM asked_artists a) AS artists,
           (SELECT json_agg(json_build_object(
                       'asked', x.asked, 'name', x.name, 'songs', x.songs,
                       'closest', CASE WHEN x.name IS NULL THEN
                           (SELECT json_agg(c.name) FROM (
                               SELECT g.name FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id
                               ORDER BY similarity(g.folded, marconi_fold(btrim(x.asked))) DESC, tv.songs DESC,
                                        g.name
                               LIMIT closest) c) END) ORDER BY x.ord)
            FROM asked_tags x) AS tags,
           (SELECT json_agg(json_build_object('value', e.value, 'kind', e.kind, 'title', e.title,
                                              'artist', e.artist) ORDER BY e.ord)
            FROM excluded e) AS excluded,
           CASE WHEN (SELECT yes FROM all_known) THEN
               (SELECT json_agg(json_build_object('key', r.key, 'title', r.title, 'artist', r.artist,
                                                  'distance', r.distance, 'score', r.score, 'run_id', r.run_id,
                                                  'reason', r.reason))
                FROM radio(seed_keys, n, max_per_artist, variety, exact, ef_search,
                           exclude, artist_names, tag_names, mode) r)
           END AS playlist
$$
"""


def upgrade() -> None:
    # same signatures: CREATE OR REPLACE keeps the comments and the reader's grants
    op.execute(CANDIDATES_NEAR)
    op.execute(RADIO)
    op.execute(RADIO_ANSWER)
    op.execute(f"""COMMENT ON FUNCTION {ANSWER_SIGNATURE} IS
        'POST /api/radio in one statement (so from one model run): radio() and what the request named, as JSON: '
        'the seeds (title, artist, run; null when unknown), the asked artists and tags (null name and the closest '
        'names when unknown: then no playlist), what each exclude entry named, whether a song model serves.'""")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {ANSWER_SIGNATURE}")
    op.execute(_V0013.CANDIDATES_NEAR)
    op.execute(_V0013.RADIO)
