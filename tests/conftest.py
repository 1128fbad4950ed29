"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per module.

The schema comes from the Alembic migrations, applied once to a template database that each test database copies.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from marconi.config import Config, from_env
from marconi.db import embedded, make_engine, migrate, with_database

_counter = itertools.count()


@pytest.fixture(scope="session")
def base_config() -> Config:
    """Config from the environment (data dir etc.), with no DATABASE_URL: tests bring their own server."""
    return from_env().with_overrides(database_url=None)


@pytest.fixture(scope="session")
def data_dir(base_config) -> Path:
    """The shared sample data directory; tests needing it skip when it is absent."""
    path = base_config.data_dir
    if not path.is_dir():
        pytest.skip(f"sample data directory {path} not found (set MARCONI_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def pg_server():
    """Start a PostgreSQL for the session; yield (pgdata, url of the 'postgres' db).

    The embedded server, or with ``MARCONI_TEST_PG_BIN`` (a directory holding initdb and pg_ctl) a fresh cluster of
    that installation, e.g. Debian's PostgreSQL 15 without pgvector (tests/servers.py).
    """
    root = Path(tempfile.mkdtemp(prefix="marconi-test-"))
    root.chmod(0o755)
    bindir = os.environ.get("MARCONI_TEST_PG_BIN")
    if bindir:
        from servers import start_cluster, stop_cluster

        pgdata, url = start_cluster(Path(bindir), root, dbname="marconi_template")
    else:
        pgdata = root / "pgdata"
        url = embedded.ensure_server(pgdata, dbname="marconi_template")
    fast = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"), isolation_level="AUTOCOMMIT",
                            poolclass=sa.NullPool)
    with fast.connect() as conn:  # a throwaway test cluster: durability buys nothing, shutdown gets much faster
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            conn.execute(sa.text(f"ALTER SYSTEM SET {setting}"))
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    fast.dispose()
    template_engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"), poolclass=sa.NullPool)
    migrate.upgrade(template_engine)
    template_engine.dispose()
    base = with_database(url, "postgres")
    yield pgdata, base
    if bindir:
        stop_cluster(Path(bindir), pgdata)
    else:
        embedded.stop(pgdata)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def new_database(pg_server):
    """Factory: create an empty database (optionally from the migrated template); return its URL."""
    _, base = pg_server
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg2://"), isolation_level="AUTOCOMMIT",
                             poolclass=sa.NullPool)

    def make(migrated: bool = True) -> str:
        name = f"test_{next(_counter)}"
        with admin.connect() as conn:
            template = "TEMPLATE marconi_template" if migrated else ""
            conn.execute(sa.text(f"CREATE DATABASE {name} {template}"))
        return with_database(base, name)

    return make


@pytest.fixture(scope="module")
def db_url(new_database) -> str:
    """URL of a fresh, migrated database for this test module."""
    return new_database()


@pytest.fixture(scope="module")
def engine(db_url, base_config):
    """SQLAlchemy engine on this module's database."""
    eng = make_engine(base_config, url=db_url)
    yield eng
    eng.dispose()


INGEST_AND_SCRAPER_TABLES = (
    "tracks, playlists, playlist_tracks, images, image_blobs, spotify_search_words, spotify_title_words, "
    "spotify_playlist_fetch, wikidata_classes, commons_files, scrape_cursors")


@pytest.fixture()
def emptied(engine):
    """Empty this module's database of ingest and scraper rows before the test (one database, clean each time)."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {INGEST_AND_SCRAPER_TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="module")
def fake(request, data_dir):
    """The fake Spotify, Wikidata and Commons APIs on 127.0.0.1 for one module (options: its FAKE_SERVER dict)."""
    from fakes import FakeServer

    with FakeServer(data_dir, **getattr(request.module, "FAKE_SERVER", {})) as server:
        yield server


@pytest.fixture()
def fake_cleared(fake):
    """The module's fake with programmed faults and its request log cleared before and after the test."""
    fake.clear()
    yield fake
    fake.clear()


@pytest.fixture(scope="session")
def trained_url(new_database, data_dir, tmp_path_factory) -> tuple[str, Path]:
    """A database with yes_small (minus a holdout) imported and a song model serving: (url, split dir)."""
    from marconi.evaluation.radio import split_yes
    from marconi.importers.playlists import import_playlists
    from marconi.training.song2vec import train_songs

    url = new_database()
    split = tmp_path_factory.mktemp("split") / "yes_small"
    split_yes(data_dir / "playlists" / "yes_small", split, fraction=0.1, min_length=5, seed=42)
    eng = make_engine(Config(), url=url)
    import_playlists(eng, split, "yes", progress=False)
    train_songs(eng, progress=False, epochs=10)
    eng.dispose()
    return url, split


@pytest.fixture(scope="session")
def trained_engine(trained_url):
    """Engine on the trained database (shared: tests must not write to it)."""
    eng = make_engine(Config(), url=trained_url[0])
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def app(trained_url, base_config):
    """The Flask app on the trained database."""
    from marconi import create_app

    # A short URL-fetch deadline keeps the API fuzzer quick when it invents URLs of hosts that never answer.
    application = create_app({"database_url": trained_url[0], "home": str(base_config.home),
                              "url_fetch_timeout": 1.0})
    application.testing = True
    return application


@pytest.fixture()
def client(app):
    """A Flask test client."""
    return app.test_client()


CLASSES = ["dalmatian", "Motorbikes", "cup", "sunflower", "airplanes", "watch"]


@pytest.fixture(scope="session")
def image_sets(data_dir, tmp_path_factory):
    """Index set (15 photos of each of 6 classes) and held-out queries (the other 5 of each), as folder trees."""
    root = tmp_path_factory.mktemp("images")
    src = data_dir / "images" / "caltech101"
    for cls in CLASSES:
        files = sorted((src / cls).glob("*.jpg"))
        for i, f in enumerate(files):
            dest = root / ("caltech101" if i < 15 else "queries") / cls  # the importer credits caltech101 folders
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest / f.name)
    return root / "caltech101", root / "queries"


@pytest.fixture(scope="session")
def images_engine(trained_url, image_sets, base_config):
    """The trained database, plus the index images imported and encoded with EfficientNet-Lite0 on the CPU."""
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images

    eng = make_engine(Config(), url=trained_url[0])
    import_images(eng, image_sets[0], progress=False)
    cfg = base_config.with_overrides(device="cpu", encoder="efficientnet-lite0")
    encode_images(eng, cfg, progress=False)
    yield eng
    eng.dispose()
