"""The model-run lifecycle: ``building`` → ``serving`` | ``failed``, the swap, and a per-process metadata cache.

One function builds a run of any kind::

    with runs.build(engine, "songs", "song2vec", params, dims) as run:
        run.save_artifact("pca.npz", data)       # optional, stored with the run
        n = run.stage(columns, rows)             # vectors into the staging table, indexed, committed
        run.publish(n, metrics)                  # metrics recorded, then the swap: the run serves

While it builds, the process holds the kind's build lock on a connection of its own, so a second build of the
same kind is refused, and a run left ``building`` by a process that died (a crash, ``kill -9``) is marked
``failed`` with the reason by the next build or by :func:`sweep_dead_builders` (run at app start-up and by
``marconi status``). Vectors are staged and committed before the swap, and the swap is one short transaction
that asks for its lock with a ``lock_timeout`` and retries: a long reader delays the swap, never the traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa

from marconi.config import Config
from marconi.config import load as load_config
from marconi.db import runs as runs_db
from marconi.db import vectors as vectors_db
from marconi.errors import Conflict, Unavailable

log = logging.getLogger(__name__)

KINDS = ("songs", "images")
DIED = "the process building this run stopped before it finished (killed or crashed); its vectors never served"


class BuildInProgress(Conflict):
    """Another process is building a run of the same kind."""

    code = "build_in_progress"


class SwapTimeout(Unavailable):
    """The live vector table stayed locked by other sessions for longer than the swap may wait."""

    code = "swap_timeout"


class RunBuild:
    """A run being built: stage its vectors, store artifacts, then publish it (see :func:`build`)."""

    def __init__(self, engine: sa.Engine, kind: str, run_id: int, swap_lock_timeout_ms: int, swap_wait_s: float):
        """Use :func:`build` rather than calling this."""
        self.engine, self.kind, self.id = engine, kind, run_id
        self.tables = vectors_db.LIVE_TABLES[kind]
        self.staged: set[str] = set()
        self.swap_lock_timeout_ms, self.swap_wait_s = swap_lock_timeout_ms, swap_wait_s
        self.published = False

    def save_artifact(self, name: str, data: bytes) -> None:
        """Store a binary artifact with the run (committed at once)."""
        with self.engine.begin() as conn:
            runs_db.save_artifact(conn, self.id, name, data)

    def has_pgvector(self) -> bool:
        """True when the live table has the pgvector column (so :meth:`stage` can build an HNSW index)."""
        with self.engine.connect() as conn:
            return vectors_db.has_pgvector(conn, self.tables[0])

    def stage(self, columns: Sequence[str], rows: Iterable[Sequence], hnsw_dims: int | None = None,
              table: str | None = None) -> int:
        """COPY the run's rows for one live table (default: the vectors) into a fresh staging table, index it and
        commit; return the row count. Every table of the kind must be staged before :meth:`publish`.

        With ``hnsw_dims`` the ``hvec`` column is typed vector(hnsw_dims) and gets an HNSW inner-product index.
        """
        table = table or self.tables[0]
        if table not in self.tables:
            raise ValueError(f"{table} is not a table of {self.kind} runs ({', '.join(self.tables)})")
        t0 = time.perf_counter()
        with self.engine.begin() as conn:
            staging = vectors_db.create_staging(conn, table, hvec_dims=hnsw_dims)
            n = vectors_db.load_staging(conn, staging, columns, rows)
            vectors_db.index_staging(conn, table, hnsw=bool(hnsw_dims))
        self.staged.add(table)
        log.info("run %d: %d rows of %s staged and indexed in %.1fs", self.id, n, table, time.perf_counter() - t0)
        return n

    def publish(self, n_vectors: int, metrics: dict, dims: int | None = None) -> None:
        """Record the run's metrics (and its dimensions, when they turned out other than planned), then swap its
        staged vectors in and mark it serving."""
        for table in self.tables:
            if table not in self.staged and table in vectors_db.OPTIONAL_TABLES:
                self.stage([], [], table=table)
        missing = [t for t in self.tables if t not in self.staged]
        if missing:
            raise RuntimeError(f"run {self.id} cannot serve: {', '.join(missing)} not staged")
        with self.engine.begin() as conn:
            runs_db.record_built(conn, self.id, n_vectors, metrics, dims)
        swap_in(self.engine, self.kind, self.id, self.swap_lock_timeout_ms, self.swap_wait_s)
        self.published = True


def swap_in(engine: sa.Engine, kind: str, run_id: int, lock_timeout_ms: int, wait_s: float) -> None:
    """Replace the live tables of ``kind`` by the staged ones and mark ``run_id`` serving, in one transaction.

    Each try waits at most ``lock_timeout_ms`` for the table lock, then gives way (so readers queued behind it go
    on) and tries again with a growing pause, for up to ``wait_s`` seconds; then raises SwapTimeout.
    """
    tables = vectors_db.LIVE_TABLES[kind]
    deadline = time.monotonic() + wait_s
    pause, tries, warned = 0.05, 0, False
    while True:
        tries += 1
        try:
            with engine.begin() as conn:
                for table in tables:
                    vectors_db.swap_tables(conn, table, lock_timeout_ms)
                runs_db.mark_serving(conn, kind, run_id)
            log.info("run %d serving (%s swapped in after %d tr%s)", run_id, ", ".join(tables), tries,
                     "y" if tries == 1 else "ies")
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != "55P03":  # lock_not_available
                raise
        with engine.connect() as conn:
            blockers = [b for table in tables for b in vectors_db.lock_blockers(conn, table)]
        who = ", ".join(f"pid {b['pid']} ({b['usename']}, {b['state']})" for b in blockers) or "another session"
        if time.monotonic() > deadline:
            raise SwapTimeout(f"run {run_id} could not be swapped in: {who} held a lock on {tables[0]} for over "
                              f"{wait_s:.0f}s. End that session (SELECT pg_terminate_backend(pid)) and build again.")
        if not warned:
            log.warning("run %d waits to swap in: %s holds a lock on %s; retrying (traffic is not blocked)",
                        run_id, who, ", ".join(tables))
            warned = True
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


@contextmanager
def build(engine: sa.Engine, kind: str, model: str, params: dict, dims: int, config: Config | None = None,
          swap_wait_s: float | None = None) -> Iterator[RunBuild]:
    """Create a run of ``kind`` in state 'building' and yield it; mark it failed if the block raises.

    Raises BuildInProgress when another live process builds the same kind. Runs left 'building' by dead processes
    are marked failed first. The swap's lock timeout and how long it may wait come from ``config`` (the
    environment's when None); ``swap_wait_s`` overrides the latter.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    cfg = load_config(config)
    swap_lock_timeout_ms = cfg.swap_lock_timeout_ms
    swap_wait_s = cfg.swap_wait_seconds if swap_wait_s is None else swap_wait_s
    lock_conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        if not runs_db.try_build_lock(lock_conn, kind):
            pid = runs_db.build_lock_holder(lock_conn, kind)
            raise BuildInProgress(f"another process (database backend pid {pid}) is building a {kind} model; "
                                  "wait for it to finish or stop it, then try again")
        _fail_dead(lock_conn, kind)
        run_id = runs_db.create_run(lock_conn, kind, model, params, dims)
        run = RunBuild(engine, kind, run_id, swap_lock_timeout_ms, swap_wait_s)
        try:
            yield run
            if not run.published:
                raise RuntimeError("the build ended without publishing its vectors")
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            runs_db.fail_run(lock_conn, run_id, reason)
            for table in vectors_db.LIVE_TABLES[kind]:
                vectors_db.drop_staging(lock_conn, table)
            log.error("run %d failed: %s", run_id, reason)
            raise
        finally:
            runs_db.release_build_lock(lock_conn, kind)
    finally:
        lock_conn.close()


def _fail_dead(conn: sa.Connection, kind: str) -> list[int]:
    """Mark the 'building' runs of ``kind`` failed; the caller holds the kind's build lock, so their builders died."""
    dead = runs_db.building_runs(conn, kind)
    for run_id in dead:
        runs_db.fail_run(conn, run_id, DIED)
        log.warning("run %d (%s) was left building by a process that stopped; marked failed", run_id, kind)
    if dead:
        for table in vectors_db.LIVE_TABLES[kind]:
            vectors_db.drop_staging(conn, table)
    return dead


def sweep_dead_builders(engine: sa.Engine) -> list[int]:
    """Mark failed every 'building' run whose builder is gone; return their ids. Live builds are left alone."""
    swept: list[int] = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for kind in KINDS:
            if not runs_db.building_runs(conn, kind) or not runs_db.try_build_lock(conn, kind):
                continue
            try:
                swept += _fail_dead(conn, kind)
            finally:
                runs_db.release_build_lock(conn, kind)
    return swept


def serving_run(conn: sa.Connection, kind: str) -> dict | None:
    """The serving run of ``kind`` (id, model, params, dims, metrics, ...), or None."""
    return runs_db.serving_run(conn, kind)


_cache: dict[tuple[str, int], dict] = {}
_cache_lock = threading.Lock()
CACHE_SIZE = 16


def run_by_id(conn: sa.Connection, run_id: int) -> dict | None:
    """One run's metadata, cached per process and database: a run that has served never changes (but another
    database, a test's or a bench's, has its own run of the same id)."""
    key = (conn.engine.url.render_as_string(hide_password=False), run_id)
    run = _cache.get(key)
    if run is not None:
        return run
    run = runs_db.run_by_id(conn, run_id)
    if run is not None and run["status"] in ("serving", "retired"):
        with _cache_lock:
            if len(_cache) >= CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[key] = run
    return run


def artifact(conn: sa.Connection, run_id: int, name: str) -> bytes | None:
    """An artifact stored with a run, or None."""
    return runs_db.load_artifact(conn, run_id, name)
