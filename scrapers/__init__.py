"""Scrapers: the outside world (Spotify, Wikidata, Commons) → Marconi's ingest tables.

Each job is a plain function whose keyword arguments are its CLI options (``python -m scrapers --help``). All
progress lives in PostgreSQL (migration 0003, SQL in ``marconi.db.scrape``): a job killed at any moment and
started again finishes with no duplicate, lost or half-written rows.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import sqlalchemy as sa

from marconi.db import scrape

T = TypeVar("T")
R = TypeVar("R")


class JobBusy(RuntimeError):
    """Another process runs the same scraper job on this database."""


@contextlib.contextmanager
def job_lock(engine: sa.Engine, job: str) -> Iterator[None]:
    """Hold the job's advisory lock for the duration of the block; raise JobBusy if another process has it."""
    with engine.connect() as conn:
        got = scrape.try_job_lock(conn, job)
        conn.commit()
        if not got:
            raise JobBusy(f"another `{job}` is running on this database")
        try:
            yield
        finally:
            scrape.release_job_lock(conn, job)
            conn.commit()


def bounded_map(func: Callable[[T], R], items: Iterable[T], concurrency: int) -> Iterator[tuple[T, R]]:
    """Yield (item, func(item)) in input order, running up to ``concurrency`` calls at once (few in flight)."""
    if concurrency <= 1:
        for item in items:
            yield item, func(item)
        return
    window = concurrency * 2
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="scraper") as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(func, item)))
            if len(pending) >= window:
                done_item, fut = pending.popleft()
                yield done_item, fut.result()
        while pending:
            done_item, fut = pending.popleft()
            yield done_item, fut.result()


def finish_summary(summary: dict, started: float, session, unit: str) -> dict:
    """Add elapsed seconds, a rate of ``unit`` per second and the HTTP counters to a job summary."""
    seconds = time.monotonic() - started
    summary["seconds"] = round(seconds, 2)
    summary[f"{unit}_per_s"] = round(summary.get(unit, 0) / seconds, 2) if seconds > 0 else None
    stats = dict(session.stats)
    summary["http"] = {"requests": stats.get("requests", 0), "retries": stats.get("retries", 0),
                       **{k: v for k, v in sorted(stats.items()) if k.startswith("retry:")}}
    return summary
