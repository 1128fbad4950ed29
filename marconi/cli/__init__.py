"""The `marconi` command: one module per command group, wired below. Run `marconi -h` to start."""

from __future__ import annotations

import click

from marconi.cli import db, demo, evaluate, images, imports, serve, sql, status, train
from marconi.cli.context import Ctx, echo_json, pass_ctx
from marconi.config import ConfigError, load
from marconi.errors import MarconiError
from marconi.logs import setup_logging

__all__ = ["Ctx", "echo_json", "main", "pass_ctx"]


class MarconiGroup(click.Group):
    """A command group that reports a MarconiError (a failure meant for the user: a bad input file, no model
    serving, a build already running) as a one-line CLI error instead of a traceback."""

    def invoke(self, ctx):
        """Run the subcommand; a MarconiError becomes ``Error: <message>`` and exit status 1, and so does a
        database that cannot be reached (with ``-v``, the traceback is shown as well)."""
        import sqlalchemy as sa

        try:
            return super().invoke(ctx)
        except MarconiError as exc:
            raise click.ClickException(exc.message) from None
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if ctx.params.get("verbose"):
                raise
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise click.ClickException(
                f"cannot reach the database: {reason}. Check DATABASE_URL (or --database-url); for the embedded "
                "server, `marconi db status` says whether it runs. Add -v for the traceback.") from None


@click.group(cls=MarconiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="DATABASE_URL", default=None,
              help="PostgreSQL URL. Default: an embedded server kept in $MARCONI_HOME (started on demand).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="marconi")
@click.pass_context
def main(ctx, database_url, verbose):
    """Marconi: song radio and reverse image search, answered by PostgreSQL.

    \b
    Typical first run:
      marconi db upgrade
      marconi eval split ../shared/data/playlists/yes_small --out ~/yes_split/yes_small
      marconi import playlists --format yes ~/yes_split/yes_small
      marconi train songs
      marconi serve
    Or all of it at once: `marconi demo`. The scrapers have their own command: `marconi-scrape -h`.
    """
    try:
        config = load({"database_url": database_url} if database_url else None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging("DEBUG" if verbose else config.log_level)
    ctx.obj = Ctx(config)


main.add_command(db.db)
main.add_command(imports.import_)
imports.import_.add_command(images.import_images_cmd)
main.add_command(train.train)
main.add_command(images.encode)
main.add_command(evaluate.eval_)
evaluate.eval_.add_command(images.eval_images_cmd)
evaluate.eval_.add_command(images.eval_text_images_cmd)
main.add_command(images.search)
main.add_command(serve.serve)
main.add_command(sql.sql)
main.add_command(demo.demo)
main.add_command(status.status)
