"""Crawl state of the scrapers (tables from migration 0003): search words, playlists to fetch, classes, files.

Functions take a connection first, return plain data and never commit. The scrapers write a piece of data and the
state row that records it in one transaction, which is what makes a kill at any moment safe to resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa

PLAYLIST_STATUSES = ("pending", "done", "not_found", "forbidden", "failed")
FILE_STATUSES = ("pending", "done", "missing", "invalid", "failed")


# ------------------------------------------------------------------------------------------------ job lock
def try_job_lock(conn: sa.Connection, job: str) -> bool:
    """Take the session-level advisory lock of ``job``; False when another process holds it.

    The lock lasts as long as the connection (a killed process releases it); commit after taking it so the
    connection does not sit in an open transaction.
    """
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtext('marconi.scrapers:' || :job))"),
                             {"job": job}).scalar())


def release_job_lock(conn: sa.Connection, job: str) -> None:
    """Release the advisory lock of ``job`` taken by ``try_job_lock`` on this connection."""
    conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext('marconi.scrapers:' || :job))"), {"job": job})


# ------------------------------------------------------------------------------------------- spotify words
def reopen_failed_words(conn: sa.Connection, max_attempts: int) -> int:
    """Put failed search words with attempts left back into 'searching' (they keep their offset); return how many."""
    return conn.execute(sa.text(
        "UPDATE spotify_search_words SET status = 'searching' WHERE status = 'failed' AND attempts < :max"),
        {"max": max_attempts}).rowcount


def next_search_word(conn: sa.Connection, seed: str, exclude: Iterable[str] = ()) -> tuple[str, int] | None:
    """Return (word, next_offset) to search next, registering a new word as 'searching'; None when none is left.

    Order: a word already being searched (resume); the seed word when nothing was searched yet; otherwise the word
    found in most discovered playlist titles that was never searched (ties broken alphabetically).
    """
    excluded = list(exclude)
    row = conn.execute(sa.text(
        """
        SELECT word, next_offset FROM spotify_search_words
        WHERE status = 'searching' AND NOT (word = ANY(:excluded))
        ORDER BY started_at, word LIMIT 1
        """), {"excluded": excluded}).first()
    if row is not None:
        return row[0], row[1]
    anything = conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM spotify_search_words)")).scalar()
    if not anything:
        word = seed
    else:
        word = conn.execute(sa.text(
            """
            SELECT tw.word FROM spotify_title_words tw
            WHERE NOT EXISTS (SELECT 1 FROM spotify_search_words sw WHERE sw.word = tw.word)
            ORDER BY tw.n_playlists DESC, tw.word LIMIT 1
            """)).scalar()
        if word is None:
            return None
    conn.execute(sa.text("INSERT INTO spotify_search_words (word) VALUES (:w) ON CONFLICT (word) DO NOTHING"),
                 {"w": word})
    return word, 0


def advance_word(conn: sa.Connection, word: str, next_offset: int, total: int | None, n_new: int,
                 done: bool) -> None:
    """Record a stored search page: the next offset, the reported total, new playlists, and whether it is done."""
    conn.execute(sa.text(
        """
        UPDATE spotify_search_words
           SET next_offset = :next_offset, total = :total, n_found = n_found + :n_new,
               status = CASE WHEN :done THEN 'done' ELSE 'searching' END,
               last_error = NULL, searched_at = now()
         WHERE word = :word
        """), {"word": word, "next_offset": next_offset, "total": total, "n_new": n_new, "done": done})


def fail_word(conn: sa.Connection, word: str, error: str) -> None:
    """Mark a search word failed (one more attempt used); it keeps its offset for a later pass."""
    conn.execute(sa.text(
        "UPDATE spotify_search_words SET status = 'failed', attempts = attempts + 1, last_error = :e WHERE word = :w"),
        {"w": word, "e": error[:1000]})


def discovered_count(conn: sa.Connection) -> int:
    """Number of discovered playlists."""
    return conn.execute(sa.text("SELECT count(*) FROM spotify_playlist_fetch")).scalar()


def known_playlist_ids(conn: sa.Connection, ids: Sequence[str]) -> set[str]:
    """The subset of ``ids`` already discovered."""
    if not ids:
        return set()
    rows = conn.execute(sa.text("SELECT playlist_id FROM spotify_playlist_fetch WHERE playlist_id = ANY(:ids)"),
                        {"ids": list(ids)}).scalars()
    return set(rows)


def add_discovered(conn: sa.Connection, playlists: Sequence[Mapping], word: str) -> list[str]:
    """Insert newly discovered playlists (dicts with id, name, owner, snapshot_id, n_tracks); return inserted ids."""
    if not playlists:
        return []
    params = {
        "ids": [p["id"] for p in playlists],
        "names": [p.get("name") for p in playlists],
        "owners": [p.get("owner") for p in playlists],
        "snapshots": [p.get("snapshot_id") for p in playlists],
        "totals": [p.get("n_tracks") for p in playlists],
        "word": word,
    }
    rows = conn.execute(sa.text(
        """
        INSERT INTO spotify_playlist_fetch (playlist_id, name, owner, snapshot_id, n_tracks_reported, found_by)
        SELECT u.id, u.name, u.owner, u.snapshot, u.total, :word
        FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:owners AS text[]),
                    CAST(:snapshots AS text[]), CAST(:totals AS integer[]))
             WITH ORDINALITY AS u(id, name, owner, snapshot, total, ord)
        ORDER BY u.ord
        ON CONFLICT (playlist_id) DO NOTHING
        RETURNING playlist_id
        """), params).scalars()
    return list(rows)


def add_title_words(conn: sa.Connection, counts: Mapping[str, int]) -> None:
    """Add ``counts`` ({word: playlists}) to the title-word counts."""
    if not counts:
        return
    words = sorted(counts)
    conn.execute(sa.text(
        """
        INSERT INTO spotify_title_words (word, n_playlists)
        SELECT * FROM unnest(CAST(:words AS text[]), CAST(:ns AS integer[]))
        ON CONFLICT (word) DO UPDATE SET n_playlists = spotify_title_words.n_playlists + EXCLUDED.n_playlists
        """), {"words": words, "ns": [counts[w] for w in words]})


def playlists_to_fetch(conn: sa.Connection, max_attempts: int, limit: int | None = None) -> list[dict]:
    """Discovered playlists whose tracks are still to fetch (pending, or failed with attempts left), oldest first."""
    rows = conn.execute(sa.text(
        """
        SELECT playlist_id, name, owner, snapshot_id FROM spotify_playlist_fetch
        WHERE status = 'pending' OR (status = 'failed' AND attempts < :max)
        ORDER BY seq
        LIMIT :limit
        """), {"max": max_attempts, "limit": limit}).mappings()
    return [dict(r) for r in rows]


def mark_playlist(conn: sa.Connection, playlist_id: str, status: str, error: str | None = None,
                  counts: Mapping[str, int] | None = None) -> None:
    """Record the outcome of fetching a playlist's tracks ('failed' uses one attempt)."""
    if status not in PLAYLIST_STATUSES or status == "pending":
        raise ValueError(f"bad playlist status {status!r}")
    # A fetched playlist has every count (0 when nothing was skipped); the others have none.
    default = 0 if status == "done" else None
    counts = {k: (counts or {}).get(k, default) for k in ("tracks", "null", "local", "other")}
    conn.execute(sa.text(
        """
        UPDATE spotify_playlist_fetch
           SET status = :status,
               attempts = attempts + CASE WHEN :status = 'failed' THEN 1 ELSE 0 END,
               last_error = :error,
               fetched_at = CASE WHEN :status = 'failed' THEN fetched_at ELSE now() END,
               n_tracks = :n_tracks, n_skipped_null = :n_null, n_skipped_local = :n_local,
               n_skipped_other = :n_other
         WHERE playlist_id = :id
        """), {"id": playlist_id, "status": status, "error": error[:1000] if error else None,
               "n_tracks": counts["tracks"], "n_null": counts["null"], "n_local": counts["local"],
               "n_other": counts["other"]})


def spotify_progress(conn: sa.Connection) -> dict:
    """Counts of search words and discovered playlists by status."""
    words = dict(conn.execute(sa.text("SELECT status, count(*) FROM spotify_search_words GROUP BY status")).all())
    lists = dict(conn.execute(sa.text("SELECT status, count(*) FROM spotify_playlist_fetch GROUP BY status")).all())
    return {"search_words": words, "playlists": lists}


# -------------------------------------------------------------------------------------------------- cursors
def get_cursor(conn: sa.Connection, name: str) -> tuple[int, bool]:
    """Return (position, done) of a named cursor; (0, False) when it does not exist yet."""
    row = conn.execute(sa.text("SELECT position, done FROM scrape_cursors WHERE name = :n"), {"n": name}).first()
    return (row[0], row[1]) if row else (0, False)


def set_cursor(conn: sa.Connection, name: str, position: int, done: bool) -> None:
    """Store a named cursor's position and whether the source is exhausted."""
    conn.execute(sa.text(
        """
        INSERT INTO scrape_cursors (name, position, done) VALUES (:n, :p, :d)
        ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, done = EXCLUDED.done, updated_at = now()
        """), {"n": name, "p": position, "d": done})


# ------------------------------------------------------------------------------------------ wikidata/commons
def class_count(conn: sa.Connection) -> int:
    """Number of stored Wikidata classes."""
    return conn.execute(sa.text("SELECT count(*) FROM wikidata_classes")).scalar()


def known_class_ids(conn: sa.Connection, qids: Sequence[str]) -> set[str]:
    """The subset of ``qids`` already stored."""
    if not qids:
        return set()
    return set(conn.execute(sa.text("SELECT qid FROM wikidata_classes WHERE qid = ANY(:q)"),
                            {"q": list(qids)}).scalars())


def add_classes(conn: sa.Connection, classes: Sequence[Mapping]) -> list[str]:
    """Insert new classes (qid, label, description, wikipedia_url, image_file) and queue their Commons files.

    Known classes and files are left as they are. Returns the qids inserted.
    """
    if not classes:
        return []
    cols = ("qid", "label", "description", "wikipedia_url", "image_file")
    params = {c: [k.get(c) for k in classes] for c in cols}
    inserted = list(conn.execute(sa.text(
        """
        INSERT INTO wikidata_classes (qid, label, description, wikipedia_url, image_file)
        SELECT u.qid, u.label, u.description, u.wikipedia_url, u.image_file
        FROM unnest(CAST(:qid AS text[]), CAST(:label AS text[]), CAST(:description AS text[]),
                    CAST(:wikipedia_url AS text[]), CAST(:image_file AS text[]))
             WITH ORDINALITY AS u(qid, label, description, wikipedia_url, image_file, ord)
        ORDER BY u.ord
        ON CONFLICT (qid) DO NOTHING
        RETURNING qid
        """), params).scalars())
    if inserted:
        conn.execute(sa.text(
            """
            INSERT INTO commons_files (file_name, qid)
            SELECT c.image_file, c.qid FROM wikidata_classes c
            WHERE c.qid = ANY(:qids)
            ORDER BY c.seq
            ON CONFLICT (file_name) DO NOTHING
            """), {"qids": inserted})
    return inserted


def files_to_fetch(conn: sa.Connection, max_attempts: int, limit: int | None = None) -> list[dict]:
    """Commons files still to download (pending, or failed with attempts left) with their class, oldest first."""
    rows = conn.execute(sa.text(
        """
        SELECT f.file_name, f.qid, c.label, c.description, c.wikipedia_url
        FROM commons_files f JOIN wikidata_classes c USING (qid)
        WHERE f.status = 'pending' OR (f.status = 'failed' AND f.attempts < :max)
        ORDER BY f.seq
        LIMIT :limit
        """), {"max": max_attempts, "limit": limit}).mappings()
    return [dict(r) for r in rows]


def mark_file(conn: sa.Connection, file_name: str, status: str, error: str | None = None,
              image_id: int | None = None) -> None:
    """Record the outcome of downloading a Commons file ('failed' uses one attempt)."""
    if status not in FILE_STATUSES or status == "pending":
        raise ValueError(f"bad file status {status!r}")
    conn.execute(sa.text(
        """
        UPDATE commons_files
           SET status = :status, image_id = :image_id, last_error = :error, updated_at = now(),
               attempts = attempts + CASE WHEN :status = 'failed' THEN 1 ELSE 0 END
         WHERE file_name = :f
        """), {"f": file_name, "status": status, "image_id": image_id, "error": error[:1000] if error else None})


def commons_progress(conn: sa.Connection) -> dict:
    """Counts of classes and Commons files by status."""
    files = dict(conn.execute(sa.text("SELECT status, count(*) FROM commons_files GROUP BY status")).all())
    return {"classes": class_count(conn), "files": files}
