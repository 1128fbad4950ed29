"""Alembic glue: the schema lives only in migrations/; this applies and checks it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from marconi.config import REPO_ROOT


class SchemaOutdated(RuntimeError):
    """The database schema is not at the newest migration."""


def alembic_config(engine: sa.Engine) -> AlembicConfig:
    """Return an Alembic config pointing at migrations/ and at ``engine``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Revert migrations down to ``revision``."""
    command.downgrade(alembic_config(engine), revision)


def revisions(engine: sa.Engine) -> tuple[str | None, str]:
    """Return (current revision of the database, newest revision in migrations/)."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, script.get_current_head()


def check(engine: sa.Engine) -> None:
    """Raise SchemaOutdated, saying what to run, unless the database is at the newest migration."""
    current, head = revisions(engine)
    if current != head:
        raise SchemaOutdated(
            f"database schema is at revision {current or 'none'} but this Marconi needs {head}: "
            "run `marconi db upgrade`"
        )
