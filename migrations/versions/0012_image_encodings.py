"""Encoded image features kept between runs, so an encode on a Ray cluster resumes where it stopped.

``image_encodings(encoding, image_id, features, classes)``: one row per image and encoding (which encoder, weights,
device type and dtype made it: marconi.image_search.ray_encode), written by the one writer of
``marconi encode images --ray`` a batch per transaction. A run killed mid-way keeps every committed batch; the
next run encodes only the images without a row. ``features`` is the L2-normalised feature vector and ``classes``
the classifier's probabilities (NULL without a head), both as little-endian float32 bytes: read back with one
``numpy.frombuffer`` each, where a real[] costs a Python float per number. Rows go with their image (cascade).
Internal to the builder: not granted to marconi_reader.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE image_encodings (
            encoding  text   NOT NULL,
            image_id  bigint NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            features  bytea  NOT NULL,
            classes   bytea,
            PRIMARY KEY (encoding, image_id)
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE image_encodings IS 'Image features encoded by marconi encode images --ray, kept so that a "
        "stopped run resumes: float32 bytes per image and encoding (encoder, weights, device type, dtype).'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS image_encodings")
