"""Cooperating with gevent's event loop when `marconi serve` runs gunicorn's gevent workers.

A gevent worker serves every connection from one event loop. Anything that waits must yield to it, and anything
that computes for long must leave it, or every other request of the worker (a health check included) waits too:

* :func:`cooperative_database_driver`: psycopg2 yields to the loop while PostgreSQL works (psycogreen);
* :func:`off_loop`: CPU-bound work (decoding a photo, a forward pass of an encoder) runs in a native thread of
  gevent's thread pool, so the loop keeps answering and, as with threaded workers, several forward passes can run
  at once (torch releases the GIL).

Outside gevent (the CLI, batch jobs, tests with Flask's client) both do nothing special.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def under_gevent() -> bool:
    """Whether gevent has patched this process's standard library (gunicorn's gevent worker does, at start)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


def cooperative_database_driver() -> bool:
    """Make psycopg2 yield to gevent's loop while it waits on PostgreSQL, when this process runs under gevent.
    Return whether it did. Call it before the first connection is opened.

    Without it a query blocks the whole worker, every connection on it included, until PostgreSQL answers.
    """
    if not under_gevent():
        return False
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    return True


def off_loop(fn: Callable[..., T], *args, **kwargs) -> T:
    """Return ``fn(*args, **kwargs)``, computed in a native thread when under gevent (in this thread otherwise).

    Only for pure computation: ``fn`` must not use the database or sockets, whose gevent versions belong to the
    loop's thread. Exceptions are raised here as if ``fn`` had run here.
    """
    if not under_gevent():
        return fn(*args, **kwargs)
    from gevent import get_hub

    return get_hub().threadpool.apply(fn, args, kwargs)
