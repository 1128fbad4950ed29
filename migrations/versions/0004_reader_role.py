"""A read-only role for people who query the database directly.

marconi_reader may SELECT the catalogue, the serving vectors and the model runs (and call the SQL functions),
nothing else: every transaction is read-only, statements stop after 30 s, idle transactions after 60 s. It cannot
read the crawl state (which records raw errors and URLs), model artifacts or image bytes, and it cannot write.
The role is cluster-wide; this migration (re)creates it if missing and grants it access to this database only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

READABLE = ("tracks", "playlists", "playlist_tracks", "model_runs", "song_vectors", "images", "image_vectors",
            "wikidata_classes")


def upgrade() -> None:
    op.execute(
        """
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'marconi_reader') THEN
            CREATE ROLE marconi_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
          END IF;
        END $$
        """
    )
    op.execute("ALTER ROLE marconi_reader SET default_transaction_read_only = on")
    op.execute("ALTER ROLE marconi_reader SET statement_timeout = '30s'")
    op.execute("ALTER ROLE marconi_reader SET idle_in_transaction_session_timeout = '60s'")
    op.execute("DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO marconi_reader', current_database()); "
               "END $$")
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    op.execute("GRANT USAGE ON SCHEMA public TO marconi_reader")
    for table in READABLE:
        op.execute(f"GRANT SELECT ON {table} TO marconi_reader")


def downgrade() -> None:
    for table in READABLE:
        op.execute(f"REVOKE ALL ON {table} FROM marconi_reader")
    op.execute("REVOKE ALL ON SCHEMA public FROM marconi_reader")
    op.execute("DO $$ BEGIN EXECUTE format('REVOKE ALL ON DATABASE %I FROM marconi_reader', current_database()); "
               "END $$")
    # other databases of the cluster may still use the role: drop it only when nothing depends on it
    op.execute(
        """
        DO $$ BEGIN
          DROP ROLE IF EXISTS marconi_reader;
        EXCEPTION WHEN dependent_objects_still_exist THEN
          RAISE NOTICE 'marconi_reader is still used by another database; kept';
        END $$
        """
    )
