"""Progress of long jobs: a tqdm bar on a terminal, a plain log line every so often anywhere else.

A bar redraws itself with carriage returns, which is what a person at a terminal wants and what floods a log file,
a CI log or `journalctl` (thousands of partial lines). So :func:`progress` gives tqdm's bar when standard error is
a terminal, and otherwise a :class:`LoggedProgress`: the same object to the caller (iterate it, ``update``,
``close``, use it in ``with``), which logs one line such as
``importing: 20,000/39,546 playlist (51%), 3,120.4 playlist/s, 6 s elapsed`` at most every :data:`LOG_EVERY_S`
seconds and once at the end.
"""

from __future__ import annotations

import io
import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("marconi.progress")

LOG_EVERY_S = 30.0


def progress(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """Return a progress bar over ``iterable`` (tqdm's keyword arguments: total, desc, unit, ...).

    ``enabled`` False shows nothing; otherwise a bar on a terminal, periodic log lines elsewhere.
    """
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    if _is_terminal(kwargs.get("file", sys.stderr)):
        return tqdm(iterable, **kwargs)
    return LoggedProgress(iterable, **kwargs)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LoggedProgress(tqdm):
    """tqdm that logs a line every ``every_s`` seconds, and one at the end, instead of drawing a bar."""

    def __init__(self, *args, every_s: float | None = None, **kwargs):
        """As tqdm; ``every_s`` is the least time between two log lines (default :data:`LOG_EVERY_S`)."""
        every_s = LOG_EVERY_S if every_s is None else every_s
        kwargs.update(file=io.StringIO(), mininterval=every_s, maxinterval=every_s, leave=True)
        self._last_logged_n = None
        self._last_logged_at = None
        self._every_s = every_s
        self._closing = False
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        """Log the progress: never at 0, never twice for the same count, and at most once every ``every_s``
        seconds but for the last line (tqdm's own update and its monitor thread may both ask within one interval)."""
        now = time.monotonic()
        if self.n == 0 or self.n == self._last_logged_n:
            return True
        if not self._closing and self._last_logged_at is not None and now - self._last_logged_at < self._every_s:
            return True
        self._last_logged_n, self._last_logged_at = self.n, now
        elapsed = self.format_dict["elapsed"]
        done = f"{self.n:,}/{self.total:,} {self.unit} ({self.n / self.total:.0%})" if self.total else \
            f"{self.n:,} {self.unit}"
        speed = f"{self.n / elapsed:,.1f} {self.unit}/s" if elapsed > 0 else ""
        log.info("%s: %s", self.desc or "progress", ", ".join(filter(None, (done, speed,
                                                                               f"{elapsed:.0f} s elapsed"))))
        return True

    def close(self):
        """Log the last line (whenever the one before was), then close."""
        self._closing = True
        super().close()
