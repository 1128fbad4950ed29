"""`marconi import …`: data sets from files into the database (`import images` lives in marconi.cli.images)."""

from __future__ import annotations

from pathlib import Path

import click

from marconi.cli.context import Ctx, pass_ctx


@click.group("import")
def import_():
    """Load data sets from files into the database (idempotent)."""


@import_.command("playlists")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["yes", "mpd"]), default="yes", show_default=True,
              help="yes: Cornell yes.com (train.txt + song_hash.txt). mpd: Million Playlist Dataset JSON slices.")
@click.option("--source", default=None, help="Key prefix for yes.com tracks and playlists (default: folder name).")
@click.option("--batch-size", default=5000, show_default=True,
              help="Playlists written per batch; all batches are one transaction (an error or a kill imports nothing).")
@pass_ctx
def import_playlists_cmd(c: Ctx, path, fmt, source, batch_size):
    """Import playlists from PATH. Running it twice changes nothing.

    A file that is not in the format (or not UTF-8) stops the import with its name and line.
    """
    from marconi.importers import printable_path
    from marconi.importers.playlists import import_playlists

    engine = c.checked_engine()
    try:
        s = import_playlists(engine, path, fmt, source, batch_size)
    except OSError as exc:  # a file that cannot be read (permissions, a folder where a file should be)
        where = printable_path(exc.filename) if exc.filename else printable_path(path)
        raise click.ClickException(f"{where}: {exc.strerror or exc}") from None
    click.echo(f"tracks: {s.tracks}; playlists: {s.playlists_seen} read, {s.inserted} new, {s.updated} updated, "
               f"{s.unchanged} unchanged")
