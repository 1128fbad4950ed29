"""Songs: catalogue search and the radio question."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

_SEARCH = sa.text(
    r"""
    WITH q AS (SELECT marconi_fold(:q) AS f),
    words AS (SELECT array_agg('%' || replace(replace(replace(w, '\', '\\'), '%', '\%'), '_', '\_') || '%') AS pats
              FROM q, regexp_split_to_table(q.f, '\s+') AS w WHERE w <> '')
    SELECT t.key, t.title, t.artist, (sv.track_id IS NOT NULL) AS has_vector,
           count(*) OVER () AS total
    FROM tracks t
    CROSS JOIN q CROSS JOIN words
    LEFT JOIN song_vectors sv ON sv.track_id = t.id
    WHERE t.search LIKE ALL (words.pats)
    ORDER BY (marconi_fold(t.title) = q.f) DESC,
             (t.search LIKE replace(replace(replace(q.f, '\', '\\'), '%', '\%'), '_', '\_') || '%') DESC,
             word_similarity(q.f, t.search) DESC,
             (sv.track_id IS NOT NULL) DESC,
             t.title, t.artist, t.key
    LIMIT :limit OFFSET :offset
    """
)

_COUNT = sa.text(_SEARCH.text.split("SELECT t.key")[0] + """
    SELECT count(*) FROM tracks t CROSS JOIN words WHERE t.search LIKE ALL (words.pats)
    """)


def search_songs(conn: sa.Connection, q: str, limit: int = 20, offset: int = 0) -> tuple[int, list[dict]]:
    """Return (total matches, one page of songs) whose title or artist contains every word of ``q``.

    Matching ignores case and accents; exact titles come first, then prefixes, then trigram word similarity.
    """
    rows = conn.execute(_SEARCH, {"q": q, "limit": limit, "offset": offset}).mappings().all()
    total = rows[0]["total"] if rows else 0
    if not rows and offset:
        total = conn.execute(_COUNT, {"q": q}).scalar()
    return total, [{"key": r["key"], "title": r["title"], "artist": r["artist"], "has_vector": r["has_vector"]}
                   for r in rows]


_RADIO = sa.text(
    """
    WITH seeds AS (
        SELECT s.key, s.ord, t.title, t.artist, sv.run_id
        FROM unnest(CAST(:seeds AS text[])) WITH ORDINALITY AS s(key, ord)
        LEFT JOIN tracks t ON t.key = s.key
        LEFT JOIN song_vectors sv ON sv.track_id = t.id
    ), asked_artists AS (
        SELECT a.asked, a.ord, av.name, av.songs
        FROM unnest(CAST(:artists AS text[])) WITH ORDINALITY AS a(asked, ord)
        LEFT JOIN artist_vectors av ON av.artist = marconi_fold(btrim(a.asked))
    ), asked_tags AS (
        SELECT x.asked, x.ord, g.name, g.songs
        FROM unnest(CAST(:tags AS text[])) WITH ORDINALITY AS x(asked, ord)
        LEFT JOIN LATERAL (SELECT g.name, tv.songs FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id
                           WHERE g.folded = marconi_fold(btrim(x.asked))
                           ORDER BY tv.songs DESC, g.name LIMIT 1) g ON true
    ), excluded AS (  -- what each exclude entry names, matched as radio() matches it: a track key, else an artist
        SELECT x.value, x.ord, t.title, coalesce(t.artist, a.artist) AS artist,
               CASE WHEN t.key IS NOT NULL THEN 'song' WHEN a.artist IS NOT NULL THEN 'artist' ELSE 'unknown' END
                 AS kind
        FROM unnest(CAST(:exclude AS text[])) WITH ORDINALITY AS x(value, ord)
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
                               LIMIT :closest) c) END) ORDER BY a.ord)
            FROM asked_artists a) AS artists,
           (SELECT json_agg(json_build_object(
                       'asked', x.asked, 'name', x.name, 'songs', x.songs,
                       'closest', CASE WHEN x.name IS NULL THEN
                           (SELECT json_agg(c.name) FROM (
                               SELECT g.name FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id
                               ORDER BY similarity(g.folded, marconi_fold(btrim(x.asked))) DESC, tv.songs DESC,
                                        g.name
                               LIMIT :closest) c) END) ORDER BY x.ord)
            FROM asked_tags x) AS tags,
           (SELECT json_agg(json_build_object('value', e.value, 'kind', e.kind, 'title', e.title,
                                              'artist', e.artist) ORDER BY e.ord)
            FROM excluded e) AS excluded,
           CASE WHEN (SELECT yes FROM all_known) THEN
               (SELECT json_agg(json_build_object('key', r.key, 'title', r.title, 'artist', r.artist,
                                                  'distance', r.distance, 'score', r.score, 'run_id', r.run_id,
                                                  'reason', r.reason))
                FROM radio(CAST(:seeds AS text[]), :size, :max_per_artist, :variety, :exact, :ef_search,
                           CAST(:exclude AS text[]), CAST(:artists AS text[]), CAST(:tags AS text[]), :mode) r)
           END AS playlist
    """
)


def radio(conn: sa.Connection, seeds: Sequence[str], size: int, max_per_artist: int | None, variety: float,
          exact: bool, ef_search: int, exclude: Sequence[str] = (), artists: Sequence[str] = (),
          tags: Sequence[str] = (), mode: str = "medium", closest: int = 5) -> dict:
    """Ask the SQL function radio() and describe the seeds, artists and tags, in one statement (so from one run).

    Returns {serving, run_id, has_artist_vectors, has_tag_vectors, hnsw, seeds: [{key, title, artist, run_id}],
    artists: [{asked, name, songs, closest}], tags: [{asked, name, songs, closest}], excluded: [{value, kind, title,
    artist}], playlist: [{key, title, artist, distance, score, run_id, reason}]}. A seed unknown to the catalogue has
    a null title, one without a vector a null run_id; an artist or tag the serving model does not know has a null
    name and the ``closest`` names by trigram similarity, and then the playlist is empty. ``exclude`` holds track
    keys or artist names to leave out; ``excluded`` says what each named, in order: kind "song" (its title and
    artist), "artist" (as the catalogue spells it) or "unknown" (matches nothing, left out of nothing).
    """
    row = conn.execute(_RADIO, {"seeds": list(seeds), "size": size, "max_per_artist": max_per_artist,
                                "variety": float(variety), "exact": exact, "ef_search": ef_search,
                                "exclude": list(exclude), "artists": list(artists), "tags": list(tags),
                                "mode": mode, "closest": closest}).mappings().one()
    return {"serving": row["serving"], "run_id": row["run_id"], "hnsw": row["hnsw"],
            "has_artist_vectors": row["has_artist_vectors"], "has_tag_vectors": row["has_tag_vectors"],
            "seeds": row["seeds"] or [], "artists": row["artists"] or [], "tags": row["tags"] or [],
            "excluded": row["excluded"] or [], "playlist": row["playlist"] or []}
