"""Scraper state: the crawl progress of the Spotify, Wikidata and Commons scrapers.

All progress lives here, written in the same transaction as the data it describes, so a scraper killed at any
moment resumes where it stopped without duplicating or losing rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Playlist discovery by title-word expansion: one row per word searched (or being searched).
    op.execute(
        """
        CREATE TABLE spotify_search_words (
            word        text PRIMARY KEY,
            status      text NOT NULL DEFAULT 'searching' CHECK (status IN ('searching', 'done', 'failed')),
            next_offset integer NOT NULL DEFAULT 0,   -- the next search page starts here
            total       integer,                      -- results Spotify reports for the word
            n_found     integer NOT NULL DEFAULT 0,   -- playlists this word discovered first
            attempts    integer NOT NULL DEFAULT 0,   -- failed attempts
            last_error  text,
            started_at  timestamptz NOT NULL DEFAULT now(),
            searched_at timestamptz                   -- when the last page was stored
        )
        """
    )
    # How many discovered playlists have each word in their title (each title counts a word once).
    op.execute(
        """
        CREATE TABLE spotify_title_words (
            word        text PRIMARY KEY,
            n_playlists integer NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX spotify_title_words_rank ON spotify_title_words (n_playlists DESC, word)")
    # Every discovered playlist and whether its tracks were fetched.
    op.execute(
        """
        CREATE TABLE spotify_playlist_fetch (
            playlist_id       text PRIMARY KEY,               -- Spotify id (playlists.key 'spotify:playlist:<id>')
            seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- discovery order
            name              text,
            owner             text,
            snapshot_id       text,
            n_tracks_reported integer,                        -- tracks.total in the search result
            found_by          text,                           -- the search word
            status            text NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'done', 'not_found', 'forbidden', 'failed')),
            attempts          integer NOT NULL DEFAULT 0,     -- failed attempts
            last_error        text,
            discovered_at     timestamptz NOT NULL DEFAULT now(),
            fetched_at        timestamptz,
            n_tracks          integer,                        -- tracks stored
            n_skipped_null    integer,                        -- items whose track is null (removed from the catalogue)
            n_skipped_local   integer,                        -- local files
            n_skipped_other   integer                         -- podcast episodes and other non-tracks
        )
        """
    )
    op.execute("CREATE INDEX spotify_playlist_fetch_todo ON spotify_playlist_fetch (seq) "
               "WHERE status IN ('pending', 'failed')")
    # Wikidata classes (items that are the P31 value of other items and have a P18 image).
    op.execute(
        """
        CREATE TABLE wikidata_classes (
            qid           text PRIMARY KEY,
            seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            label         text NOT NULL,
            description   text,
            wikipedia_url text,
            image_file    text NOT NULL,                  -- Commons file name, without 'File:'
            fetched_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Commons files to download, one per distinct file name.
    op.execute(
        """
        CREATE TABLE commons_files (
            file_name  text PRIMARY KEY,                  -- without 'File:', spaces not underscores
            seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            qid        text NOT NULL REFERENCES wikidata_classes(qid),  -- the class that asked for it first
            status     text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'done', 'missing', 'invalid', 'failed')),
            attempts   integer NOT NULL DEFAULT 0,        -- failed attempts
            last_error text,
            image_id   bigint REFERENCES images(id) ON DELETE SET NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX commons_files_todo ON commons_files (seq) WHERE status IN ('pending', 'failed')")
    # Named cursors of paged sources (e.g. the SPARQL OFFSET of the class query).
    op.execute(
        """
        CREATE TABLE scrape_cursors (
            name       text PRIMARY KEY,
            position   integer NOT NULL DEFAULT 0,
            done       boolean NOT NULL DEFAULT false,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    for table in ("scrape_cursors", "commons_files", "wikidata_classes", "spotify_playlist_fetch",
                  "spotify_title_words", "spotify_search_words"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
