"""Core schema: tracks, playlists, model runs, song vectors, and the radio SQL functions.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RADIO = """
        CREATE FUNCTION radio(seed_keys text[], n integer DEFAULT 25, max_per_artist integer DEFAULT NULL)
        RETURNS TABLE (key text, title text, artist text, distance double precision)
        LANGUAGE sql STABLE AS $$
            WITH nn AS MATERIALIZED (
                SELECT sv.track_id, cube_distance(sv.vec, song_query_vector(seed_keys)) AS distance
                FROM song_vectors sv
                ORDER BY sv.vec <-> song_query_vector(seed_keys)
                LIMIT (n + cardinality(seed_keys)) * CASE WHEN max_per_artist IS NULL THEN 1 ELSE 5 END
            ), ranked AS (
                SELECT t.key, t.title, t.artist, nn.distance,
                       row_number() OVER (PARTITION BY lower(t.artist) ORDER BY nn.distance) AS artist_rank
                FROM nn JOIN tracks t ON t.id = nn.track_id
                WHERE NOT (t.key = ANY(seed_keys))
            )
            SELECT key, title, artist, distance FROM ranked
            WHERE max_per_artist IS NULL OR artist_rank <= max_per_artist
            ORDER BY distance
            LIMIT n
        $$
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS cube")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    # pgvector is optional: when present it powers an HNSW index kept in step with the cube column.
    op.execute(
        """
        DO $$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
            CREATE EXTENSION IF NOT EXISTS vector;
          END IF;
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION marconi_fold(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$
        """
    )
    op.execute(
        """
        CREATE TABLE tracks (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key         text NOT NULL UNIQUE,          -- 'yes:123', 'spotify:track:<id>', ...
            title       text NOT NULL,
            artist      text NOT NULL DEFAULT '',
            duration_ms integer,
            created_at  timestamptz NOT NULL DEFAULT now(),
            search      text GENERATED ALWAYS AS (marconi_fold(title || ' ' || artist)) STORED
        )
        """
    )
    op.execute("CREATE INDEX tracks_search_trgm ON tracks USING gin (search gin_trgm_ops)")
    op.execute(
        """
        CREATE TABLE playlists (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key         text NOT NULL UNIQUE,          -- 'yes:<line>', 'mpd:<pid>', 'spotify:playlist:<id>'
            name        text,
            owner       text,
            source      text NOT NULL,
            snapshot_id text,
            n_tracks    integer NOT NULL DEFAULT 0,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE playlist_tracks (
            playlist_id bigint NOT NULL REFERENCES playlists(id) ON DELETE CASCADE,
            position    integer NOT NULL,
            track_id    bigint NOT NULL REFERENCES tracks(id),
            PRIMARY KEY (playlist_id, position)
        )
        """
    )
    op.execute("CREATE INDEX playlist_tracks_track ON playlist_tracks (track_id)")
    op.execute(
        """
        CREATE TABLE model_runs (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind        text NOT NULL CHECK (kind IN ('songs', 'images')),
            model       text NOT NULL,
            params      jsonb NOT NULL DEFAULT '{}',
            dims        integer,
            n_vectors   integer,
            status      text NOT NULL DEFAULT 'building' CHECK (status IN ('building', 'serving', 'retired', 'failed')),
            started_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            metrics     jsonb NOT NULL DEFAULT '{}'
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX model_runs_one_serving ON model_runs (kind) WHERE status = 'serving'")
    op.execute(
        """
        CREATE TABLE model_artifacts (
            run_id bigint NOT NULL REFERENCES model_runs(id) ON DELETE CASCADE,
            name   text NOT NULL,
            data   bytea NOT NULL,
            PRIMARY KEY (run_id, name)
        )
        """
    )
    # The serving song vectors. A training run builds song_vectors_staging with the same shape, indexes it and
    # swaps it in with a rename inside one transaction (marconi/db/vectors.py).
    #   vec  : the item side of the search, the song's output vector plus one coordinate sqrt(M^2 - |u|^2), so that
    #          the Euclidean nearest neighbour of a query (with 0 in that coordinate) is its maximum inner product.
    #   qvec : the song's unit-length input vector, summed over seeds to form a query.
    op.execute(
        """
        CREATE TABLE song_vectors (
            track_id bigint PRIMARY KEY,
            run_id   bigint NOT NULL,
            vec      cube NOT NULL,
            qvec     cube NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX song_vectors_vec_gist ON song_vectors USING gist (vec)")
    op.execute(
        """
        DO $$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
            ALTER TABLE song_vectors ADD COLUMN hvec vector;  -- typed and HNSW-indexed per run
          END IF;
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION song_query_vector(seed_keys text[]) RETURNS cube
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            SELECT cube(array_agg(c ORDER BY i))
            FROM (
                SELECT i, sum(cube_ll_coord(sv.qvec, i)) AS c
                FROM tracks t
                JOIN song_vectors sv ON sv.track_id = t.id
                CROSS JOIN LATERAL generate_series(1, cube_dim(sv.qvec)) AS i
                WHERE t.key = ANY(seed_keys)
                GROUP BY i
            ) coords
        $$
        """
    )
    op.execute(
        """
        COMMENT ON FUNCTION song_query_vector(text[]) IS
        'Query vector for a radio: the sum of the seeds'' unit input vectors (NULL when no seed has a vector).'
        """
    )
    op.execute(RADIO)
    op.execute(
        """
        COMMENT ON FUNCTION radio(text[], integer, integer) IS
        'A radio playlist of n songs for the seed track keys, nearest first, seeds excluded, at most max_per_artist '
        'songs per artist. Uses the GiST index on song_vectors.vec.'
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS radio(text[], integer, integer)")
    op.execute("DROP FUNCTION IF EXISTS song_query_vector(text[])")
    for table in ("song_vectors", "model_artifacts", "model_runs", "playlist_tracks", "playlists", "tracks"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS marconi_fold(text)")
