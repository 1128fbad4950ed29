"""What each image shows, in words: ImageNet classes per image and readable tags, for text search and tags.

* ``classes``: the classifier's vocabulary (ImageNet-1k): index, WordNet id, readable names, definition and the
  broader words WordNet gives (a dalmatian is a dog, a canine, a carnivore, ...).
* ``image_classes``: an image run's top classes per image with their probabilities (``p``). Text search scores an
  image by the sum of ``p`` times how well the query matches each class, so this table is its inverted index.
* ``image_tags``: readable tags per image with scores (the class names and broader words of its top classes), for
  ``... WHERE tag = 'dog'``.

Both per-image tables belong to an image model run (``run_id``) and are swapped in with ``image_vectors``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE classes (
            class_index integer PRIMARY KEY,
            wnid        text NOT NULL,
            name        text NOT NULL,
            names       text[] NOT NULL,
            definition  text,
            broader     text[] NOT NULL DEFAULT '{}'
        )
        """
    )
    op.execute(
        """
        CREATE TABLE image_classes (
            image_id    bigint NOT NULL,
            run_id      bigint NOT NULL,
            class_index integer NOT NULL,
            p           real NOT NULL,
            PRIMARY KEY (image_id, class_index)
        )
        """
    )
    op.execute("CREATE INDEX image_classes_class ON image_classes (class_index)")
    op.execute(
        """
        CREATE TABLE image_tags (
            image_id bigint NOT NULL,
            run_id   bigint NOT NULL,
            tag      text NOT NULL,
            score    real NOT NULL,
            direct   boolean NOT NULL,
            PRIMARY KEY (image_id, tag)
        )
        """
    )
    op.execute("CREATE INDEX image_tags_tag ON image_tags (tag, score DESC)")
    for table, comment in (
        ("classes", "The image classifier's classes (ImageNet-1k): names, definition and broader WordNet words."),
        ("image_classes", "Top classes of each image with their probability p, from the serving image run."),
        ("image_tags", "Readable tags of each image: its top classes' names (direct) and broader words, with the "
                       "summed probability as score. Example: SELECT image_id FROM image_tags WHERE tag = 'dog'."),
    ):
        op.execute(f"COMMENT ON TABLE {table} IS '{comment.replace(chr(39), chr(39) * 2)}'")
        op.execute(f"GRANT SELECT ON {table} TO marconi_reader")


def downgrade() -> None:
    for table in ("image_tags", "image_classes", "classes"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
