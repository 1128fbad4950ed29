"""Text search reads a smoothed score per image and class, beside the classifier's own probability.

``image_classes.score``: (√p + the mean √p of the image's 5 nearest images) / 2 (marconi.image_search.smoothing),
which text search sums, weighted by how well the query matches each class. ``p`` stays the classifier's own
probability for the image. Rows written before this revision have no score; text search then uses √p as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE image_classes ADD COLUMN score real")
    op.execute(
        "COMMENT ON COLUMN image_classes.score IS 'Text-search weight of the class for the image: (sqrt(p) + the "
        "mean sqrt(p) of its 5 nearest images) / 2. NULL for rows written before migration 0008.'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE image_classes DROP COLUMN score")
