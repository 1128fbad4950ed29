"""Configuration: the only module that reads the environment.

Every setting has a default that works on a fresh machine; tests pass a dict to ``create_app`` or build a
``Config`` directly instead of touching ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_home() -> Path:
    """Per-user data location; root gets /var/lib/marconi because the embedded server runs as its own user."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not xdg:
        return Path("/var/lib/marconi")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "marconi"


@dataclass(frozen=True)
class Config:
    """Settings for one Marconi process; see the README's configuration table."""

    database_url: str | None = None
    home: Path = field(default_factory=_default_home)
    data_dir: Path = REPO_ROOT.parent / "shared" / "data"
    device: str = "auto"
    encoder: str = "efficientnet-lite0"
    max_upload_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    ann: str = "auto"
    hnsw_ef_search: int = 400
    image_rerank: bool = False
    log_level: str = "INFO"
    url_fetch: bool = True
    url_fetch_timeout: float = 10.0
    url_fetch_allow_networks: str = ""
    statement_timeout_ms: int = 10_000
    reader_password: str | None = None

    @property
    def pgdata(self) -> Path:
        """Directory of the embedded PostgreSQL cluster."""
        return self.home / "pgdata"

    @property
    def model_dir(self) -> Path:
        """Directory for converted model weights (e.g. the VGG16 conv layers)."""
        return self.home / "models"

    def with_overrides(self, **overrides) -> Config:
        """Return a copy with the given fields replaced (unknown names raise TypeError)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown config keys: {sorted(unknown)}")
        conv = {k: (Path(v) if k in ("home", "data_dir") and v is not None else v) for k, v in overrides.items()}
        return replace(self, **conv)


ENV_VARS = {
    "DATABASE_URL": "database_url",
    "MARCONI_HOME": "home",
    "MARCONI_DATA_DIR": "data_dir",
    "MARCONI_DEVICE": "device",
    "MARCONI_ENCODER": "encoder",
    "MARCONI_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "MARCONI_MAX_IMAGE_PIXELS": "max_image_pixels",
    "MARCONI_ANN": "ann",
    "MARCONI_HNSW_EF_SEARCH": "hnsw_ef_search",
    "MARCONI_IMAGE_RERANK": "image_rerank",
    "MARCONI_LOG_LEVEL": "log_level",
    "MARCONI_URL_FETCH": "url_fetch",
    "MARCONI_URL_FETCH_TIMEOUT": "url_fetch_timeout",
    "MARCONI_URL_FETCH_ALLOW_NETWORKS": "url_fetch_allow_networks",
    "MARCONI_STATEMENT_TIMEOUT_MS": "statement_timeout_ms",
    "MARCONI_READER_PASSWORD": "reader_password",
}


def _coerce(name: str, raw: str):
    default = getattr(Config(), name)
    if default is None:
        return raw
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def from_env(environ: dict | None = None) -> Config:
    """Build a Config from environment variables (see ENV_VARS), falling back to defaults."""
    env = os.environ if environ is None else environ
    overrides = {}
    for var, name in ENV_VARS.items():
        if env.get(var):
            overrides[name] = _coerce(name, env[var])
    return Config().with_overrides(**overrides)
