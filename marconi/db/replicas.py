"""Read replicas: the API's reads go to healthy hot standbys (``DATABASE_REPLICA_URLS``), all else to the primary.

:class:`ReadRouter` holds the primary's engine and one engine per replica. Its :meth:`~ReadRouter.connect` is what a
read view opens (``marconi.api.read_engine()``): a connection to the next healthy replica in turn, or to the
primary when none is healthy. Writes and jobs (import, train, encode, scrape, the CLI) never see the router: they
use the primary's engine.

Health. A replica is checked when its state is stale (a healthy one every ``check_interval_s``), by the request that
finds it so; a request never waits for another's check. It must answer, be a standby (``pg_is_in_recovery()``: a
promoted standby is a primary of its own, and is never read from) and be at most ``max_lag_s`` behind: lag is
told in bytes (the primary's WAL position less what the standby has replayed) and in seconds (since the primary
first wrote past that position, :class:`PrimaryPositions`). One that fails is skipped and checked again after a
back-off that doubles up to ``max_backoff_s``; a connection that fails when a read opens it marks it failed at once,
and the read goes on to the next one.

One run per answer. A swap is one transaction on the primary, and a standby replays a commit whole, so one statement
there sees the old run or the new one. Replica connections (and reads that fall back to the primary) run
``REPEATABLE READ READ ONLY``: everything a view reads through one connection comes from one snapshot, one replayed
state of the primary. A standby serves a new run once it has replayed its swap, and not before.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from marconi.config import Config
from marconi.db import hide_password, make_engine

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0  # how old a healthy replica's last check may be before a read checks it again
BACKOFF_S = 0.5  # a failed replica is checked again after this, doubled after each further failure ...
MAX_BACKOFF_S = 15.0  # ... up to this
MAX_LAG_S = 60.0  # a replica further behind the primary than this serves no reads until it catches up
CONNECT_TIMEOUT_S = 2  # libpq's connect_timeout for replica connections: an unreachable host fails fast
APPLICATION_NAME = "marconi-read"  # how replica connections show in pg_stat_activity
READ_OPTIONS = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}

HISTORY_S = 600.0  # how far back the primary's WAL positions are kept, to tell how long ago it was where a standby is

_REPLICA_STATE = sa.text("""
    SELECT pg_is_in_recovery() AS in_recovery, CAST(pg_last_wal_replay_lsn() AS text) AS replayed,
           greatest(0, pg_wal_lsn_diff(coalesce(CAST(:primary_lsn AS pg_lsn), pg_last_wal_receive_lsn()),
                                       pg_last_wal_replay_lsn()))::bigint AS lag_bytes,
           extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS since_replayed
""")


def primary_wal_lsn(conn: sa.Connection) -> str:
    """The primary's current WAL write position (an LSN such as ``0/3000148``)."""
    return str(conn.execute(sa.text("SELECT pg_current_wal_lsn()")).scalar_one())


def replica_state(conn: sa.Connection, primary_lsn: str | None) -> dict:
    """Return {in_recovery, replayed, lag_bytes, since_replayed} of the server ``conn`` reaches.

    ``replayed`` is the WAL position it has replayed; ``lag_bytes`` the WAL between ``primary_lsn`` (else what the
    standby has received) and that; ``since_replayed`` the seconds since the last transaction it replayed committed
    on the primary (None when it has replayed none since it started). All but the first are None on a server that is
    not a standby.
    """
    row = conn.execute(_REPLICA_STATE, {"primary_lsn": primary_lsn}).mappings().one()
    return dict(row)


def lsn_number(lsn: str) -> int:
    """A WAL position written ``16/B374D848`` as a byte count."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class PrimaryPositions:
    """The primary's WAL positions as seen over the last ``keep_s`` seconds, so a standby's lag can be told in
    seconds from its replayed position: how long ago the primary first wrote past it.

    (The time since the standby's last replayed commit would count the whole of a long build, during which nothing
    commits, even when the standby is only kilobytes behind.)
    """

    def __init__(self, keep_s: float = HISTORY_S):
        """Remember positions for ``keep_s`` seconds."""
        self.keep_s = keep_s
        self._seen: collections.deque[tuple[float, int]] = collections.deque()

    def record(self, lsn: str, at: float) -> None:
        """Note that the primary was at ``lsn`` at time ``at`` (only a position past the last one is kept)."""
        position = lsn_number(lsn)
        if not self._seen or position > self._seen[-1][1]:
            self._seen.append((at, position))
        while len(self._seen) > 1 and self._seen[0][0] < at - self.keep_s:
            self._seen.popleft()

    def lag_seconds(self, state: dict, now: float) -> float | None:
        """Seconds the standby in ``state`` (from :func:`replica_state`) is behind: 0 when it has replayed all the
        primary wrote, else the time since the primary was first seen past its position (at least the time since its
        last replayed commit when even the oldest position kept is past it)."""
        if state["lag_bytes"] == 0:
            return 0.0
        if state["replayed"] is None:
            return None
        replayed = lsn_number(state["replayed"])
        for i, (at, position) in enumerate(self._seen):
            if position > replayed:
                behind = now - at
                return max(behind, state["since_replayed"] or 0.0) if i == 0 else behind
        return state["since_replayed"]


@dataclass
class Replica:
    """One replica's engine and what its last check (or failed connection) found."""

    url: str
    engine: sa.Engine
    healthy: bool = False
    checked_at: float = -math.inf
    retry_at: float = -math.inf  # when a failed replica may be checked again
    failures: int = 0  # consecutive
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    error: str | None = None
    reads: int = 0  # connections this process opened on it for reads

    def due(self, now: float, check_interval_s: float) -> bool:
        """True when the replica should be checked now."""
        return now >= (self.checked_at + check_interval_s if self.healthy else self.retry_at)


class ReadRouter:
    """Opens read connections on a healthy replica (in turn), else on the primary; see the module's notes.

    Safe to share between threads and greenlets: a check runs in one of them at a time, the others read the
    state as it stands.
    """

    def __init__(self, primary: sa.Engine, replicas: Sequence[tuple[str, sa.Engine]], *,
                 check_interval_s: float = CHECK_INTERVAL_S, backoff_s: float = BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S, max_lag_s: float = MAX_LAG_S,
                 clock: Callable[[], float] = time.monotonic):
        """``replicas`` are (URL as configured, engine) pairs; their engines should use :data:`READ_OPTIONS`."""
        self.primary = primary
        self.primary_reads_engine = primary.execution_options(**READ_OPTIONS)
        self.replicas = [Replica(url, engine) for url, engine in replicas]
        self.check_interval_s, self.backoff_s, self.max_backoff_s = check_interval_s, backoff_s, max_backoff_s
        self.max_lag_s, self.clock = max_lag_s, clock
        self.primary_reads = 0  # read connections this process opened on the primary (no replica healthy)
        self.positions = PrimaryPositions()
        self._turn = itertools.count()
        self._checking = threading.Lock()

    def connect(self) -> sa.Connection:
        """A connection for reads: on the next healthy replica, else on the primary."""
        self.refresh()
        healthy = [r for r in self.replicas if r.healthy]
        if healthy:
            start = next(self._turn)
            for i in range(len(healthy)):
                replica = healthy[(start + i) % len(healthy)]
                try:
                    conn = replica.engine.connect()
                except sa.exc.DBAPIError as exc:
                    self._failed(replica, f"unreachable: {_first_line(exc)}")
                    continue
                replica.reads += 1
                return conn
        self.primary_reads += 1
        return self.primary_reads_engine.connect()

    def refresh(self) -> None:
        """Check the replicas that are due (unless another thread is checking)."""
        now = self.clock()
        if not any(r.due(now, self.check_interval_s) for r in self.replicas):
            return
        if not self._checking.acquire(blocking=False):
            return
        try:
            primary_lsn = self._primary_lsn()
            for replica in self.replicas:
                if replica.due(self.clock(), self.check_interval_s):
                    self._check(replica, primary_lsn)
        finally:
            self._checking.release()

    def status(self) -> list[dict]:
        """Each replica as /api/status shows it: URL (password hidden), healthy, replay lag, error, reads."""
        self.refresh()
        now = self.clock()
        return [{"url": hide_password(r.url), "healthy": r.healthy,
                 "lag_seconds": None if r.lag_seconds is None else round(r.lag_seconds, 3),
                 "lag_bytes": r.lag_bytes, "error": r.error, "reads": r.reads,
                 "checked_seconds_ago": None if r.checked_at == -math.inf else round(now - r.checked_at, 3)}
                for r in self.replicas]

    def dispose(self) -> None:
        """Close every replica connection pool (the primary's engine belongs to the caller)."""
        for replica in self.replicas:
            replica.engine.dispose()

    # ----------------------------------------------------------------------------------------------- checks
    def _primary_lsn(self) -> str | None:
        try:
            with self.primary.connect() as conn:
                lsn = primary_wal_lsn(conn)
        except sa.exc.DBAPIError:
            return None  # lag is then measured against what each standby has received
        self.positions.record(lsn, self.clock())
        return lsn

    def _check(self, replica: Replica, primary_lsn: str | None) -> None:
        try:
            with replica.engine.connect() as conn:
                state = replica_state(conn, primary_lsn)
        except sa.exc.DBAPIError as exc:
            self._failed(replica, f"unreachable: {_first_line(exc)}")
            return
        replica.lag_bytes, replica.lag_seconds = state["lag_bytes"], self.positions.lag_seconds(state, self.clock())
        if not state["in_recovery"]:
            self._failed(replica, "not a standby (pg_is_in_recovery() is false: promoted?); remove it from "
                                  "DATABASE_REPLICA_URLS or make it a standby of the primary again")
        elif replica.lag_seconds is not None and replica.lag_seconds > self.max_lag_s:
            self._failed(replica, f"replay lag {replica.lag_seconds:.0f}s is over {self.max_lag_s:.0f}s; see "
                                  "pg_stat_replication on the primary")
        else:
            if not replica.healthy and replica.failures:
                log.info("read replica %s is healthy again", hide_password(replica.url))
            replica.healthy, replica.failures, replica.error = True, 0, None
            replica.checked_at = self.clock()

    def _failed(self, replica: Replica, error: str) -> None:
        """Mark ``replica`` failed: skipped until its back-off has passed."""
        now = self.clock()
        if replica.healthy or replica.failures == 0:
            log.warning("read replica %s skipped: %s; reads go to %s", hide_password(replica.url), error,
                        "the other replicas" if any(r.healthy for r in self.replicas if r is not replica)
                        else "the primary")
        replica.failures += 1
        replica.healthy, replica.error, replica.checked_at = False, error, now
        replica.retry_at = now + min(self.backoff_s * 2 ** (replica.failures - 1), self.max_backoff_s)


def _first_line(exc: sa.exc.DBAPIError) -> str:
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0][:300]


def read_engine(config: Config, primary: sa.Engine, connect_args: Mapping | None = None) -> sa.Engine | ReadRouter:
    """Where the API reads: ``primary`` itself when no replica is configured, else a :class:`ReadRouter` over
    ``config.database_replica_urls`` (replica connections get ``connect_args`` too, e.g. the statement timeout)."""
    if not config.database_replica_urls:
        return primary
    args = {**(connect_args or {}), "connect_timeout": CONNECT_TIMEOUT_S, "application_name": APPLICATION_NAME}
    read_options = dict(READ_OPTIONS)
    isolation = read_options.pop("isolation_level")
    return ReadRouter(primary, [(url, make_engine(config, url=url, connect_args=args, isolation_level=isolation,
                                                  execution_options=read_options))
                                for url in config.database_replica_urls])
