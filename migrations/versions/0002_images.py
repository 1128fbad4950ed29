"""Images: metadata, pixels (bytes in the database), and image vectors.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE images (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            sha256        text NOT NULL UNIQUE,        -- of the stored bytes; duplicates are stored once
            label         text,                        -- class name, e.g. 'cat' or a Wikidata class label
            description   text,
            source        text NOT NULL,               -- 'import', 'commons', ...
            source_url    text,                        -- where the pixels came from (file path or URL)
            page_url      text,                        -- a human page about the image (Commons file page)
            wikidata_item text,                        -- e.g. 'Q146'
            licence       text,
            licence_url   text,
            author        text,
            attribution   text,
            width         integer NOT NULL,
            height        integer NOT NULL,
            format        text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX images_label ON images (label)")
    op.execute("CREATE INDEX images_wikidata_item ON images (wikidata_item)")
    op.execute(
        """
        CREATE TABLE image_blobs (
            image_id  bigint PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            data      bytea NOT NULL,                  -- the original bytes (bounded size on import)
            thumbnail bytea NOT NULL                   -- JPEG, longest side 256 px
        )
        """
    )
    # Serving image vectors, swapped in whole like song_vectors:
    #   vec  : unit-length PCA projection (<= 100 dims, cube's limit), GiST-indexed for the kNN question
    #   full : the unit-length full feature vector, for exact re-ranking of the top candidates
    op.execute(
        """
        CREATE TABLE image_vectors (
            image_id bigint PRIMARY KEY,
            run_id   bigint NOT NULL,
            vec      cube NOT NULL,
            full_vec real[] NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX image_vectors_vec_gist ON image_vectors USING gist (vec)")
    op.execute(
        """
        CREATE FUNCTION similar_images(image_id bigint, n integer DEFAULT 10)
        RETURNS TABLE (id bigint, label text, description text, distance double precision)
        LANGUAGE sql STABLE AS $$
            WITH q AS MATERIALIZED (
                SELECT vec FROM image_vectors WHERE image_vectors.image_id = similar_images.image_id
            ),
            nn AS MATERIALIZED (
                SELECT iv.image_id, cube_distance(iv.vec, (SELECT vec FROM q)) AS distance
                FROM image_vectors iv
                ORDER BY iv.vec <-> (SELECT vec FROM q)
                LIMIT n + 1
            )
            SELECT i.id, i.label, i.description, nn.distance
            FROM nn JOIN images i ON i.id = nn.image_id
            WHERE i.id <> similar_images.image_id AND EXISTS (SELECT 1 FROM q)
            ORDER BY nn.distance
            LIMIT n
        $$
        """
    )
    op.execute(
        """
        COMMENT ON FUNCTION similar_images(bigint, integer) IS
        'The n images nearest to the given image in the serving image index (PCA cube, GiST), itself excluded.'
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS similar_images(bigint, integer)")
    for table in ("image_vectors", "image_blobs", "images"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
