"""Configuration: the only module that reads the environment, and the home of every default.

``Config`` is one typed settings object (pydantic-settings): each field declares its type, limits, default and what
it does, and its environment variable is ``MARCONI_`` and its name in capitals (``DATABASE_URL`` and
``DATABASE_REPLICA_URLS`` keep their usual names). ``from_env()`` reads the variables; ``Config(...)`` itself never
does: tests pass a dict to ``create_app`` or build a ``Config`` directly. Unset or blank variables keep the default. A
value that cannot be used raises ``ConfigError``, one line naming the variable (or field) and what is expected, e.g.
``MARCONI_MAX_UPLOAD_BYTES must be an integer of at least 1, got 'abc'``; numbers are written in ASCII (``int("١٢")``
is 12 to Python, not here). The README's configuration table is written from these fields by
``scripts/config_table.py``. Logging itself is set up by :mod:`marconi.logs`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import platformdirs
from pydantic import Field, SecretStr, Strict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from marconi.logs import LOG_LEVELS
from marconi.setting_types import (
    API_KEY,
    LOWERCASE,
    UPPERCASE,
    Flag,
    Folder,
    Integer,
    Number,
    Origins,
    PostgresUrls,
    Text,
    check,
    networks_ok,
    rates_ok,
    storage_ok,
)

# The folder the running ``marconi`` package was imported from: a clone's root (run from a clone, with or without
# `pip install -e .`), or site-packages when installed from a wheel.
IMPORT_ROOT = Path(__file__).resolve().parent.parent
# The clone's root, or None when Marconi runs installed from a wheel (then marconi.resources finds the migrations and
# SQL files inside the package, and there is no ../shared/data to default to).
REPO_ROOT: Path | None = IMPORT_ROOT if ((IMPORT_ROOT / "pyproject.toml").is_file()
                                         and (IMPORT_ROOT / "migrations" / "env.py").is_file()) else None

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting has a value Marconi cannot use; the message names the setting and what is expected."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# ------------------------------------------------------------------------------------------------ home folder
def _earlier_home() -> Path:
    """Where Marconi kept its home before platformdirs chose it: $XDG_DATA_HOME/marconi or ~/.local/share/marconi."""
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "marconi"


@functools.cache
def _say_earlier_home_kept(earlier: Path, usual: Path) -> None:
    log.warning("MARCONI_HOME is not set: using %s, where an earlier Marconi kept its data, rather than %s; move it "
                "there or set MARCONI_HOME to choose", earlier, usual)


def default_home() -> Path:
    """The per-user data folder platformdirs names (~/.local/share/marconi on Linux); root gets /var/lib/marconi
    because the embedded server runs as its own user. An existing home at the earlier default is kept (said once)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not os.environ.get("XDG_DATA_HOME"):
        return Path("/var/lib/marconi")
    usual = platformdirs.user_data_path("marconi", appauthor=False)
    earlier = _earlier_home()
    if earlier != usual and earlier.is_dir() and not usual.exists():
        _say_earlier_home_kept(earlier, usual)
        return earlier
    return usual


def _setting(default: Any = None, what: str = "", *, expected: str | None = None, shown: str | None = None,
             env: str | None = None, **constraints) -> Any:
    """A field: its default, what it does (the README's table), and optionally its own "expected" words (else they
    come from its type), how its default is shown, and an environment variable other than MARCONI_<NAME>."""
    extra = {key: value for key, value in (("expected", expected), ("shown", shown)) if value is not None}
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return Field(**factory, description=what, validation_alias=env, json_schema_extra=extra or None, **constraints)


# --------------------------------------------------------------------------------------------------- settings
class _DefaultsOnTheClass(type(BaseSettings)):
    """``Config.max_image_pixels`` is the default, as it was when Config was a dataclass."""

    def __getattr__(cls, name: str) -> Any:
        info = cls.__dict__.get("__pydantic_fields__", {}).get(name)
        if info is not None and info.default_factory is None:
            return info.default
        return super().__getattr__(name)


class Config(BaseSettings, metaclass=_DefaultsOnTheClass):
    """Settings for one Marconi process; ``from_env()`` reads them from the environment (see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="MARCONI_", frozen=True, extra="forbid", validate_default=True,
                                      validate_by_name=True, validate_by_alias=True)

    database_url: Annotated[str, Strict(), Field(min_length=1)] | None = _setting(
        None, "use this PostgreSQL server instead of the embedded one; it needs the `cube`, `pg_trgm` and `unaccent` "
        "extensions, and `vector` (pgvector) for HNSW (see \"Use your own PostgreSQL\")", env="DATABASE_URL",
        expected="a string or unset", shown="*(unset: embedded PostgreSQL 18)*")
    database_replica_urls: PostgresUrls = _setting(
        (), "hot standbys that serve the API's reads (`DATABASE_URL` keeps the writes)", env="DATABASE_REPLICA_URLS",
        expected="a comma- or space-separated list of postgresql:// URLs")
    home: Folder = _setting(default_home, "the embedded cluster (`pgdata/`), converted model weights (`models/`) and "
                            "data splits (`datasets/`)", shown="platformdirs' user data folder (Linux: `~/.local/"
                            "share/marconi`; root: `/var/lib/marconi`); an existing `~/.local/share/marconi` is kept")
    data_dir: Folder | None = _setting(
        REPO_ROOT.parent / "shared" / "data" if REPO_ROOT else None, "where the sample data sets are (`playlists/`, "
        "`images/`)", shown="`../shared/data` beside a clone *(installed: unset)*")
    device: Annotated[str, Strict(), LOWERCASE, Field(pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")] = \
        _setting("auto", "`auto` uses CUDA when present", expected="auto, cpu, cuda or cuda:N")
    encoder: Text = _setting("efficientnet-lite0-2view", "image encoder for `marconi encode images` and the demo")
    max_upload_bytes: Integer = _setting(16 * 1024 * 1024, "larger uploads (and images fetched by URL) get 413", ge=1)
    max_image_pixels: Integer = _setting(40_000_000, "images declaring more pixels are refused before decoding (413)",
                                         ge=1)
    ann: Annotated[Literal["auto", "hnsw", "cube"], LOWERCASE] = _setting(
        "auto", "radio kNN: `hnsw` (pgvector), `cube` (exact GiST), `auto` = HNSW when its index exists")
    hnsw_ef_search: Integer = _setting(400, "HNSW candidate list size (speed against recall); with an IVFFlat "
                                       "index (runs of 500k+ songs) also the lists probed: this / 40", ge=1, le=1000)
    image_rerank: Flag = _setting(False, "re-order image candidates by the full vectors (measured worse on "
                                  "Caltech-101)")
    image_confident_threshold: Number = _setting(0.5, "confidence at or above which an image answer says \"good "
                                                 "match\"", ge=0.0, le=1.0)
    log_level: Annotated[Literal[LOG_LEVELS], UPPERCASE] = _setting("INFO", "how much is logged")
    url_fetch: Flag = _setting(True, "`0` turns off search by image URL (JSON `{\"url\": …}` then gets 403)")
    url_fetch_timeout: Number = _setting(10.0, "seconds for the whole fetch of an image URL, redirects included "
                                         "(then 422)", ge=0.001)
    url_fetch_allow_networks: Annotated[str, Strict(), check(networks_ok)] = _setting(
        "", "networks the server may fetch images from although private, e.g. an intranet image host "
        "`10.1.0.0/16`; otherwise only public addresses are fetched",
        expected="a comma-separated list of networks such as '10.1.0.0/16,192.168.5.7/32'", shown="*(none)*")
    statement_timeout_ms: Integer = _setting(10_000, "per-statement limit for the API's connections (0: none)",
                                         ge=0)
    reader_password: Annotated[str, Strict()] | None = _setting(
        None, "password of `marconi_reader` for `marconi sql` on a server that needs one",
        expected="a string or unset")
    gunicorn_workers: Integer = _setting(2, "`marconi serve`'s gunicorn processes (gevent workers)", ge=1)
    gunicorn_connections: Integer = _setting(100, "requests each gunicorn worker holds at once", ge=1)
    gunicorn_timeout: Integer = _setting(120, "gunicorn's worker timeout in seconds", ge=1)
    swap_lock_timeout_ms: Integer = _setting(200, "how long one try of a model swap waits for the table lock before "
                                             "giving way to readers", ge=1)
    swap_wait_seconds: Number = _setting(600.0, "how long a swap keeps retrying before the run fails, naming the "
                                         "session that held the lock", ge=0.0)
    rate_limit_uploads: Annotated[str, Strict(), LOWERCASE, check(rates_ok)] = _setting(
        "", "rate limit per client address on photo uploads and URL fetches (POST `/api/images/search` and "
        "`/api/images/tags`, the search page's photo and URL searches), e.g. `30/minute`; over it: 429 with "
        "`Retry-After`", expected="a rate such as '30/minute' or '10/second;300/hour'", shown="*(off)*")
    rate_limit_storage: Annotated[str, Strict(), check(storage_ok)] = _setting(
        "memory://", "where the rate limit's counts are kept: `memory://` counts in each gunicorn worker (a client "
        "may get up to workers × the limit); a shared store such as `redis://host:6379` counts exactly",
        expected="a storage URI such as memory:// or redis://host:6379")
    api_key: Annotated[SecretStr, check(lambda key: API_KEY.fullmatch(key.get_secret_value()))] | None = _setting(
        None, "when set, photo uploads and URL fetches (as rate-limited above) need it in `X-API-Key` or "
        "`Authorization: Bearer …` (else 401), the search page's too",
        expected="at least 16 visible ASCII characters, e.g. from "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    cors_origins: Origins = _setting(
        (), "web origins whose pages may call `/api/` from a browser (CORS), e.g. `https://app.example.org`; `*` "
        "for any; unset: none", expected="a comma-separated list of origins such as 'https://app.example.org' (or "
        "*)", shown="*(none)*")
    spotify_client_id: Annotated[str, Strict()] | None = _setting(
        None, "a Spotify app's client id; with the secret and redirect URI it turns on \"Save to Spotify\"",
        expected="a string or unset")
    spotify_client_secret: Annotated[str, Strict()] | None = _setting(None, "that Spotify app's client secret",
                                                                      expected="a string or unset")
    spotify_redirect_uri: Annotated[str, Strict()] | None = _setting(
        None, "the redirect URI registered for that app: `https://<host>/radio/spotify/callback`",
        expected="a string or unset")
    spotify_auth_url: Text = _setting("https://accounts.spotify.com/authorize",
                                      "Spotify's authorization page (tests point it at a fake)")
    spotify_token_url: Text = _setting("https://accounts.spotify.com/api/token",
                                       "Spotify's token endpoint; the scrapers read it too")
    spotify_api_url: Text = _setting("https://api.spotify.com/v1/", "Spotify's Web API; the scrapers read it too")
    spotify_timeout: Number = _setting(10.0, "seconds each call to Spotify may take", ge=0.001)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        """Only the values given: ``Config(...)`` never reads the environment (``from_env`` does)."""
        return (init_settings,)

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise _invalid(err, values) from None

    @property
    def pgdata(self) -> Path:
        """Directory of the embedded PostgreSQL cluster."""
        return self.home / "pgdata"

    @property
    def model_dir(self) -> Path:
        """Directory for downloaded and converted model weights (e.g. the VGG16 conv layers)."""
        return self.home / "models"

    @property
    def datasets_dir(self) -> Path:
        """Directory for data set splits made by the demo."""
        return self.home / "datasets"

    def require_data_dir(self) -> Path:
        """Return the sample data folder; raises a MarconiError (one line from the CLI) saying to set MARCONI_DATA_DIR
        when there is none (an installed Marconi has no clone beside it, so no ../shared/data to default to)."""
        from marconi.errors import MarconiError

        if self.data_dir is None:
            raise MarconiError("MARCONI_DATA_DIR is not set: Marconi is installed as a package, so there is no "
                               "../shared/data beside a clone; set it to the folder holding playlists/ and images/",
                               code="no_data_dir")
        return self.data_dir

    def with_overrides(self, **overrides) -> Config:
        """Return a copy with the given fields replaced (values checked; unknown names raise ConfigError)."""
        unknown = set(overrides) - set(SETTINGS)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}: known settings are "
                              f"{', '.join(SETTINGS)}")
        return type(self)(**{**{name: getattr(self, name) for name in SETTINGS}, **overrides})


# ------------------------------------------------------------------------------------------ what each field is
class Setting(NamedTuple):
    """One field as users see it: its environment variable, what it accepts, its default as shown, what it does."""

    env: str
    expected: str
    shown_default: str
    what: str


def _base_type(annotation: Any) -> Any:
    """The type under Annotated[...] and Optional[...]: ``int`` for ``Annotated[int, ...] | None``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _expected(info: FieldInfo) -> str:
    """What a field accepts, completing "X must be ...": its own words, or words from its type and limits."""
    if info.json_schema_extra and "expected" in info.json_schema_extra:
        return info.json_schema_extra["expected"]
    kind = _base_type(info.annotation)
    lo = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
    hi = next((m.le for m in info.metadata if hasattr(m, "le")), None)
    span = (f" from {lo} to {hi}" if lo is not None and hi is not None else f" of at least {lo}" if lo is not None
            else f" of at most {hi}" if hi is not None else "")
    if kind is bool:
        return "one of 1/0, true/false, yes/no, on/off"
    if kind in (int, float):
        return ("an integer" if kind is int else "a number") + span
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(get_args(kind))
    return "a directory path" if kind is Path else "a non-empty string"


def _shown(info: FieldInfo) -> str:
    """A field's default as the README shows it."""
    if info.json_schema_extra and "shown" in info.json_schema_extra:
        return info.json_schema_extra["shown"]
    value = info.default
    if value is None:
        return "*(unset)*"
    if isinstance(value, bool):
        return f"`{int(value)}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`" if value != () else "*(none)*"


SETTINGS: dict[str, Setting] = {
    name: Setting(info.validation_alias or f"MARCONI_{name.upper()}", _expected(info), _shown(info), info.description)
    for name, info in Config.model_fields.items()}
ENV_VARS: dict[str, str] = {s.env: name for name, s in SETTINGS.items()}
_FIELD_BY_ALIAS = {s.env: name for name, s in SETTINGS.items() if s.env != f"MARCONI_{name.upper()}"}


SECRETS = ("api_key", "reader_password", "spotify_client_secret")  # an error shows their length, not their value


def _shown_value(field: str, value: Any) -> str:
    """The value an error quotes: as given, or a secret's length only."""
    if field in SECRETS and value is not None:
        return f"a value of {len(value.get_secret_value() if isinstance(value, SecretStr) else str(value))} characters"
    return repr(value)


def _invalid(err: ValidationError, given: Mapping[str, Any]) -> ConfigError:
    """One line for the first problem: the field, what it accepts, and the value given."""
    first = err.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "?"
    if first["type"] == "extra_forbidden":
        return ConfigError(f"unknown setting {name}: known settings are {', '.join(SETTINGS)}")
    field = _FIELD_BY_ALIAS.get(name, name)
    return ConfigError(f"{field} must be {SETTINGS[field].expected}, got "
                       f"{_shown_value(field, given.get(name, first['input']))}", field)


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping: only the exact variable names, blank values left
    out (they keep the default)."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(Config)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {var.lower(): raw for var, raw in self._environ.items()
                if var in ENV_VARS and raw is not None and raw.strip()}


def from_env(environ: Mapping[str, str] | None = None) -> Config:
    """Build a Config from the environment (``SETTINGS`` names the variables); unset or blank ones keep their
    defaults; a bad value raises ConfigError naming the variable."""
    env = os.environ if environ is None else environ
    values = _Environment(env)()
    try:
        return Config(**values)
    except ConfigError as err:
        if err.field is None:
            raise
        var = SETTINGS[err.field].env
        raise ConfigError(f"{var} must be {SETTINGS[err.field].expected}, got "
                          f"{_shown_value(err.field, env.get(var))}", err.field) from None


def load(config: Config | Mapping | None = None) -> Config:
    """Return the Config to use: ``config`` itself, or the environment's with a dict of overrides applied."""
    if isinstance(config, Config):
        return config
    return from_env().with_overrides(**dict(config or {}))
