"""`marconi db …`: schema migrations and the embedded server."""

from __future__ import annotations

import click

from marconi.cli.context import Ctx, echo_json, pass_ctx


@click.group()
def db():
    """Manage the database: schema migrations and the embedded server."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
@pass_ctx
def db_upgrade(c: Ctx, revision):
    """Create or update the schema (Alembic migrations in migrations/)."""
    from marconi.db import migrate

    migrate.upgrade(c.engine, revision)
    current, head = migrate.revisions(c.engine)
    click.echo(f"schema at revision {current} (newest: {head})")


@db.command("status")
@pass_ctx
def db_status(c: Ctx):
    """Tell where the database is, whether the embedded server runs, and the schema revision."""
    from marconi.db import embedded, migrate

    info = {"database_url": c.config.database_url or "(embedded)"}
    if not c.config.database_url:
        info["embedded"] = embedded.status(c.config.pgdata)
        if not info["embedded"]["running"]:
            echo_json(info)
            return
    current, head = migrate.revisions(c.engine)
    info.update({"url": c.engine.url.render_as_string(hide_password=True), "schema_revision": current,
                 "newest_revision": head, "schema_current": current == head})
    echo_json(info)


@db.command("stop")
@pass_ctx
def db_stop(c: Ctx):
    """Stop the embedded PostgreSQL server (no effect with DATABASE_URL)."""
    from marconi.db import embedded

    if c.config.database_url:
        raise click.ClickException("DATABASE_URL is set: Marconi does not manage that server")
    click.echo("stopped" if embedded.stop(c.config.pgdata) else "embedded server was not running")


@db.command("url")
@pass_ctx
def db_url(c: Ctx):
    """Print the database URL (starting the embedded server if needed), e.g. for psql."""
    from marconi.db import database_url

    click.echo(database_url(c.config))
