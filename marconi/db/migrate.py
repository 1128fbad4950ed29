"""Alembic glue: the schema lives only in migrations/; this applies and checks it."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from marconi.errors import Unavailable
from marconi.resources import migrations_dir


class SchemaOutdated(Unavailable):
    """The database schema is not at the newest migration: requests get 503 until `marconi db upgrade` runs."""

    code = "schema_outdated"


def alembic_config(engine: sa.Engine) -> AlembicConfig:
    """Return an Alembic config pointing at the migrations (marconi.resources) and at ``engine``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Revert migrations down to ``revision``."""
    command.downgrade(alembic_config(engine), revision)


@functools.cache
def head_revision() -> str:
    """Return the newest revision in migrations/ (read once: it cannot change under a running process)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(conn: sa.Connection) -> str | None:
    """Return the revision the database's schema is at (None before the first migration)."""
    return MigrationContext.configure(conn).get_current_revision()


def revisions(engine: sa.Engine) -> tuple[str | None, str]:
    """Return (current revision of the database, newest revision in migrations/)."""
    with engine.connect() as conn:
        return current_revision(conn), head_revision()


def outdated(current: str | None) -> SchemaOutdated | None:
    """Return the error to raise when a database at revision ``current`` is not what this Marconi needs."""
    head = head_revision()
    if current == head:
        return None
    return SchemaOutdated(f"database schema is at revision {current or 'none'} but this Marconi needs {head}: "
                          "run `marconi db upgrade`", current=current, needed=head)


def check(engine: sa.Engine) -> None:
    """Raise SchemaOutdated, saying what to run, unless the database is at the newest migration."""
    error = outdated(revisions(engine)[0])
    if error is not None:
        raise error
