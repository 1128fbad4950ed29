"""Hold ``marconi_reader`` to its limits from outside its sessions.

PostgreSQL lets any role ``SET statement_timeout = 0`` or ``SET idle_in_transaction_session_timeout = 0`` in its
own session, and store settings for itself; nothing inside the server can forbid that. So a :class:`ReaderGuard`
thread, connected as the owner, checks every second:

- a reader query (one protocol message) running longer than the role's ``statement_timeout`` plus a grace is
  cancelled (``pg_cancel_backend``), and one still running ``TERMINATE_AFTER_S`` later ends with its session;
- a reader session idle in a transaction longer than ``idle_in_transaction_session_timeout`` plus the grace is
  ended (``pg_terminate_backend``): its locks would hold back a model swap;
- settings the reader stored for itself are removed (``marconi_reader_restore_settings()``, migration 0009).

The limits are the ones migration 0009 stores for the role (``marconi_reader_settings()``), read on every pass.
`marconi serve` runs a guard in gunicorn's master (marconi.gunicorn_hooks), `marconi sql` one of its own while psql
runs. Seeing and cancelling another role's queries needs superuser (the embedded server's owner is one) or, on a
server of your own, ``GRANT pg_read_all_stats, pg_signal_backend TO <owner>``.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field

import sqlalchemy as sa

from marconi.db import READER, sqlalchemy_url

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
GRACE_S = 2.0  # let the server's own statement_timeout act first; the guard is for when it was switched off
TERMINATE_AFTER_S = 10.0  # a cancelled query that keeps running (in code that ignores interrupts) is terminated

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|min|h|d)?\s*")


@dataclass(frozen=True)
class ReaderLimits:
    """How long a reader query may run, and a reader transaction stay idle, in seconds (0: no limit)."""

    statement_s: float
    idle_in_transaction_s: float


@dataclass
class GuardPass:
    """What one pass of the guard did: backend pids cancelled and terminated, stored settings removed."""

    cancelled: list[int] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)
    removed_settings: list[str] = field(default_factory=list)


def duration_s(setting: str) -> float:
    """Seconds in a PostgreSQL time setting such as ``30s``, ``1min`` or ``500`` (milliseconds, its unit)."""
    match = _DURATION.fullmatch(setting)
    if not match:
        raise ValueError(f"not a PostgreSQL duration: {setting!r}")
    return float(match.group(1)) * _UNITS_S[match.group(2) or "ms"]


def stored_limits(conn: sa.Connection) -> ReaderLimits | None:
    """The reader's limits as migration 0009 stores them; None when the schema predates it."""
    exists = conn.execute(sa.text("SELECT to_regprocedure('marconi_reader_settings()') IS NOT NULL")).scalar()
    if not exists:
        return None
    entries = conn.execute(sa.text("SELECT unnest(marconi_reader_settings())")).scalars().all()
    settings = dict(entry.split("=", 1) for entry in entries)
    return ReaderLimits(duration_s(settings.get("statement_timeout", "0")),
                        duration_s(settings.get("idle_in_transaction_session_timeout", "0")))


def missing_rights(conn: sa.Connection) -> list[str]:
    """The predefined roles the connected role lacks to see (pg_stat_activity hides other roles' queries) and to
    cancel reader queries; none for a superuser."""
    return conn.execute(sa.text(
        "SELECT r FROM unnest(ARRAY['pg_read_all_stats', 'pg_signal_backend']) r "
        "WHERE NOT pg_has_role(current_user, r, 'USAGE') AND NOT pg_has_role(current_user, :reader, 'USAGE')"),
        {"reader": READER}).scalars().all()


def _signal(conn: sa.Connection, function: str, state_sql: str, since: str, after_s: float,
            before_s: float | None = None) -> list[int]:
    """Send ``function`` (pg_cancel_backend / pg_terminate_backend) to reader backends in a state for a while.

    The backends are chosen in a MATERIALIZED CTE, so the signal is sent only to the rows it selects (in one WHERE
    clause the planner may evaluate the function first).
    """
    window = "" if before_s is None else f" AND clock_timestamp() - {since} <= make_interval(secs => :before_s)"
    rows = conn.execute(sa.text(
        f"WITH due AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE usename = :reader "
        f"AND backend_type = 'client backend' AND {state_sql} "
        f"AND clock_timestamp() - {since} > make_interval(secs => :after_s){window}) "
        f"SELECT pid FROM due WHERE {function}(pid)"), {"reader": READER, "after_s": after_s, "before_s": before_s})
    return [row.pid for row in rows]


def enforce(conn: sa.Connection, limits: ReaderLimits, grace_s: float = GRACE_S) -> GuardPass:
    """Cancel, terminate and restore as the module says; return what was done (``conn`` in autocommit)."""
    done = GuardPass()
    if limits.statement_s > 0:
        cancel_after = limits.statement_s + grace_s
        done.terminated += _signal(conn, "pg_terminate_backend", "state = 'active'", "query_start",
                                   cancel_after + TERMINATE_AFTER_S)
        done.cancelled += _signal(conn, "pg_cancel_backend", "state = 'active'", "query_start", cancel_after,
                                  before_s=cancel_after + TERMINATE_AFTER_S)
    if limits.idle_in_transaction_s > 0:
        done.terminated += _signal(conn, "pg_terminate_backend", "state LIKE 'idle in transaction%'",
                                   "state_change", limits.idle_in_transaction_s + grace_s)
    done.removed_settings = list(conn.execute(sa.text("SELECT marconi_reader_restore_settings()")).scalar() or [])
    return done


class ReaderGuard(threading.Thread):
    """A daemon thread that runs :func:`enforce` against ``url`` (the owner's) every ``every_s`` seconds.

    It opens a connection per pass, so it outlives database restarts and holds nothing a forked process (a gunicorn
    worker) could inherit. ``limits`` overrides the stored ones (tests use short limits).
    """

    def __init__(self, url: str, every_s: float = CHECK_EVERY_S, grace_s: float = GRACE_S,
                 limits: ReaderLimits | None = None):
        super().__init__(name="marconi-reader-guard", daemon=True)
        self.every_s, self.grace_s, self.limits = every_s, grace_s, limits
        self.engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT",
                                       connect_args={"connect_timeout": 5, "application_name": "marconi reader guard"})
        self.stopped = threading.Event()
        self._last_problem: str | None = None

    def check_once(self) -> GuardPass | None:
        """One pass; None when there was nothing to enforce with (schema before migration 0009)."""
        with self.engine.connect() as conn:
            limits = self.limits or stored_limits(conn)
            if limits is None:
                self._problem("the database schema predates migration 0009: run marconi db upgrade")
                return None
            missing = missing_rights(conn)
            done = enforce(conn, limits, self.grace_s)
        self._problem(f"the role in DATABASE_URL cannot see or cancel {READER}'s queries: as a superuser, GRANT "
                      f"{', '.join(missing)} TO it" if missing else None)
        if done.cancelled:
            log.warning("cancelled %s query(ies) past the statement limit (%g s): backend(s) %s", READER,
                        limits.statement_s, ", ".join(map(str, done.cancelled)))
        if done.terminated:
            log.warning("ended %s session(s) that kept running or idling in a transaction past the limits: "
                        "backend(s) %s", READER, ", ".join(map(str, done.terminated)))
        if done.removed_settings:
            log.warning("removed settings %s had stored for itself: %s", READER, ", ".join(done.removed_settings))
        return done

    def _problem(self, message: str | None) -> None:
        """Log a problem once (not every second), and once when it is over."""
        if message and message != self._last_problem:
            log.error("the %s guard cannot hold the reader to its limits: %s", READER, message)
        elif message is None and self._last_problem:
            log.warning("the %s guard holds the reader to its limits again", READER)
        self._last_problem = message

    def run(self) -> None:
        """Check every ``every_s`` seconds until :meth:`stop`."""
        while not self.stopped.wait(self.every_s):
            try:
                self.check_once()
            except sa.exc.DBAPIError as exc:
                self._problem(what_to_do(exc))
            except Exception:  # the guard must outlive any one failure
                log.exception("the %s guard failed a check", READER)

    def stop(self) -> None:
        """Stop guarding."""
        self.stopped.set()
        self.engine.dispose()


def what_to_do(exc: sa.exc.DBAPIError) -> str:
    """The error of a failed pass, with the fix when it is a missing privilege."""
    first_line = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    if getattr(exc.orig, "pgcode", None) == "42501" and "alter role" in first_line.lower():
        return f"{first_line} (the role in DATABASE_URL needs CREATEROLE and ADMIN OPTION on {READER})"
    if getattr(exc.orig, "pgcode", None) == "42501":
        return f"{first_line} (as a superuser: GRANT pg_read_all_stats, pg_signal_backend TO the role in DATABASE_URL)"
    return f"{first_line} (retrying every {CHECK_EVERY_S:.0f} s)"
