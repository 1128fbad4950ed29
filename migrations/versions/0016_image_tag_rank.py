"""Tags are shown specific first (issue #11): ``image_tags.rank`` is the order an image's tags are shown in.

An image's tags used to be shown by score, the summed probability of its top classes carrying the word, so the most
general words came first for every photo ("carnivore, feline, big cat" for a cheetah). ``marconi encode images``
now ranks them by score / (classes the word covers) ** 0.5, the classes' other names last
(marconi.image_search.tagging), and stores that order as ``rank`` (1 = shown first); ``score`` keeps its meaning
for SQL (``WHERE tag = 'dog' ORDER BY score DESC``). Rows written before this revision get their old order (by
score) as their rank; the next ``marconi encode images`` ranks them anew.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COMMENT = ("Readable tags of each image: its top classes' names (direct) and broader words, with the summed "
           "probability as score and the order they are shown in as rank (1 first: specific words before general "
           "ones). Example: SELECT image_id FROM image_tags WHERE tag = 'dog'.")


def upgrade() -> None:
    op.execute("ALTER TABLE image_tags ADD COLUMN rank integer")
    op.execute(
        """
        UPDATE image_tags t SET rank = r.rank
        FROM (SELECT image_id, tag, row_number() OVER (PARTITION BY image_id ORDER BY score DESC, tag) AS rank
              FROM image_tags) r
        WHERE r.image_id = t.image_id AND r.tag = t.tag
        """
    )
    op.execute("ALTER TABLE image_tags ALTER COLUMN rank SET NOT NULL")
    op.execute("ALTER TABLE image_tags ADD CONSTRAINT image_tags_rank_positive CHECK (rank >= 1)")
    op.execute("CREATE UNIQUE INDEX image_tags_image_rank ON image_tags (image_id, rank)")
    op.execute(f"COMMENT ON TABLE image_tags IS '{COMMENT.replace(chr(39), chr(39) * 2)}'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS image_tags_image_rank")
    op.execute("ALTER TABLE image_tags DROP COLUMN rank")
    op.execute("COMMENT ON TABLE image_tags IS 'Readable tags of each image: its top classes'' names (direct) and "
               "broader words, with the summed probability as score. Example: SELECT image_id FROM image_tags "
               "WHERE tag = ''dog''.'")
