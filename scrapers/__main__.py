"""`python -m scrapers …`: fill Marconi's ingest tables from Spotify, Wikidata and Commons.

Each command is a thin wrapper over one job function; progress lives in PostgreSQL, so any command can be stopped
(even with kill -9) and run again to finish its work. See docs/scrapers.md.
"""

from __future__ import annotations

import json
import logging

import click

from marconi.config import ConfigError, from_env
from marconi.logs import setup_logging

log = logging.getLogger("scrapers")


class Ctx:
    """Config, HTTP settings and a lazily built engine shared by the subcommands."""

    def __init__(self, database_url: str | None, http_overrides: dict, progress: bool):
        from scrapers.config import from_env as scraper_env
        from scrapers.http import HttpSettings

        overrides = {"database_url": database_url} if database_url else {}
        try:
            self.config = from_env().with_overrides(**overrides)
            self.scraper_config = scraper_env()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        self.http = HttpSettings().with_overrides(**http_overrides)
        self.progress = progress
        self._engine = None

    @property
    def engine(self):
        """The engine, after checking the schema is current (starts the embedded server when needed)."""
        if self._engine is None:
            from marconi.db import make_engine, migrate

            self._engine = make_engine(self.config)
            try:
                migrate.check(self._engine)
            except migrate.SchemaOutdated as exc:
                raise click.ClickException(str(exc)) from None
        return self._engine

    def session(self):
        """A new configured HTTP session."""
        from scrapers.http import make_session

        return make_session(self.http)

    def run(self, job: str, func, *args, **kwargs) -> None:
        """Run a job under its advisory lock and print its summary as JSON."""
        from scrapers import JobBusy, job_lock

        try:
            with job_lock(self.engine, job):
                summary = func(*args, progress=self.progress, **kwargs)
        except JobBusy as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(summary, indent=2, default=str))


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", default=None,
              help="PostgreSQL URL. Default: DATABASE_URL, else Marconi's embedded server (started on demand).")
@click.option("--rate", type=float, default=None,
              help="Most requests per second, over all threads (default: no limit; each API's own limits apply).")
@click.option("--concurrency", type=int, default=None, help="Worker threads fetching in parallel (default 2).")
@click.option("--timeout", type=float, default=None, help="Read timeout of one HTTP request in seconds (default 60).")
@click.option("--max-retries", type=int, default=None,
              help="Retries of one request on 429/5xx/timeouts/resets before it counts as failed (default 5).")
@click.option("--backoff-base", type=float, default=None,
              help="First backoff delay in seconds, doubled per retry, with jitter (default 1).")
@click.option("--max-retry-after", type=float, default=None,
              help="Longest Retry-After to wait for; longer ones fail the item for a later pass (default 300).")
@click.option("--progress/--no-progress", default=True, help="Show progress bars on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Log every retry and skipped item.")
@click.pass_context
def main(ctx, database_url, rate, concurrency, timeout, max_retries, backoff_base, max_retry_after, progress,
         verbose):
    """Scrape playlists (Spotify) and image classes (Wikidata, Commons) into Marconi's database.

    \b
    Songs:   marconi-scrape spotify discover --max-playlists 1000
             marconi-scrape spotify tracks
             marconi train songs
    Images:  marconi-scrape wikidata classes --limit 500
             marconi-scrape commons images --width 640
    (`python -m scrapers …` is the same command.)

    Spotify needs SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET. Every command resumes where the last run
    stopped; run it again after an interruption.
    """
    setup_logging("DEBUG" if verbose else "WARNING")
    if verbose:
        logging.getLogger("scrapers").setLevel(logging.INFO)
    http = {"rate": rate, "concurrency": concurrency, "read_timeout": timeout, "max_retries": max_retries,
            "backoff_base": backoff_base, "max_retry_after": max_retry_after}
    ctx.obj = Ctx(database_url, http, progress)


# ------------------------------------------------------------------------------------------------- spotify
@main.group()
def spotify():
    """Spotify playlists: discover them by title words, then fetch their tracks."""


def _spotify_client(c: Ctx):
    from scrapers.spotify import SpotifyAuthError, SpotifyClient

    try:
        return SpotifyClient(c.scraper_config, c.session())
    except SpotifyAuthError as exc:
        raise click.ClickException(str(exc)) from None


@spotify.command("discover")
@click.option("--max-playlists", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Stop when this many playlists are discovered in total (counting earlier runs).")
@click.option("--page-size", type=click.IntRange(1, 50), default=50, show_default=True,
              help="Playlists per search page.")
@click.option("--seed-word", default="a", show_default=True, help="The first word searched.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="A word that failed this many times is not searched again.")
@pass_ctx
def spotify_discover(c: Ctx, max_playlists, page_size, seed_word, max_attempts):
    """Search playlists for a word, then for the most frequent unsearched word of the titles found, and so on."""
    from scrapers.spotify import SpotifyAuthError, discover

    try:
        c.run("spotify discover", discover, c.engine, _spotify_client(c), max_playlists=max_playlists,
              page_size=page_size, seed_word=seed_word.casefold(), max_attempts=max_attempts)
    except SpotifyAuthError as exc:
        raise click.ClickException(str(exc)) from None


@spotify.command("tracks")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Fetch at most this many playlists now.")
@click.option("--page-size", type=click.IntRange(1, 100), default=100, show_default=True,
              help="Playlist items per request.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="A playlist that failed this many times is not tried again.")
@pass_ctx
def spotify_tracks(c: Ctx, limit, page_size, max_attempts):
    """Fetch the tracks of every discovered playlist into tracks / playlists / playlist_tracks."""
    from scrapers.spotify import SpotifyAuthError, fetch_tracks

    try:
        c.run("spotify tracks", fetch_tracks, c.engine, _spotify_client(c), page_size=page_size,
              concurrency=c.http.concurrency, max_attempts=max_attempts, limit=limit)
    except SpotifyAuthError as exc:
        raise click.ClickException(str(exc)) from None


# ------------------------------------------------------------------------------------------------ wikidata
@main.group()
def wikidata():
    """Wikidata: the image classes (items used as 'instance of' that have an image)."""


@wikidata.command("classes")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Stop when this many classes are stored in total (counting earlier runs).")
@click.option("--page-size", type=click.IntRange(1, 10000), default=500, show_default=True,
              help="Rows per SPARQL query (LIMIT).")
@click.option("--query-timeout", type=float, default=65.0, show_default=True,
              help="Seconds to wait for one SPARQL page (the public endpoint stops queries at 60 s).")
@pass_ctx
def wikidata_classes(c: Ctx, limit, page_size, query_timeout):
    """Store classes with English label, description, Wikipedia article and image; queue their Commons files."""
    from scrapers.wikidata import scrape_classes

    c.run("wikidata classes", scrape_classes, c.engine, c.session(), c.scraper_config.wikidata_sparql_url,
          limit=limit, page_size=page_size, query_timeout=query_timeout)


# ------------------------------------------------------------------------------------------------- commons
@main.group()
def commons():
    """Wikimedia Commons: download the classes' images with their licences."""


@commons.command("images")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Process at most this many files now.")
@click.option("--width", type=click.IntRange(32, 4000), default=640, show_default=True,
              help="Thumbnail width asked of Commons (iiurlwidth); smaller originals come as they are.")
@click.option("--batch-size", type=click.IntRange(1, 50), default=20, show_default=True,
              help="Files per imageinfo request.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="A file that failed this many times is not tried again.")
@pass_ctx
def commons_images(c: Ctx, limit, width, batch_size, max_attempts):
    """Download queued files, validate them and store them as images (label = the class's English label)."""
    from scrapers.commons import scrape_images

    c.run("commons images", scrape_images, c.engine, c.session(), c.scraper_config.commons_api_url, limit=limit,
          width=width, batch_size=batch_size, concurrency=c.http.concurrency, max_attempts=max_attempts,
          max_pixels=c.config.max_image_pixels, max_bytes=c.config.max_upload_bytes)


@main.command("status")
@pass_ctx
def status(c: Ctx):
    """Progress of every scraper: words, playlists, classes and files by status."""
    from marconi.db import scrape

    with c.engine.connect() as conn:
        click.echo(json.dumps({"spotify": scrape.spotify_progress(conn), "commons": scrape.commons_progress(conn)},
                              indent=2))


if __name__ == "__main__":
    main(prog_name="python -m scrapers")
