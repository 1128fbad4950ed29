"""The scrapers' own settings: credentials and endpoint URLs (the only scraper module that reads the environment).

Everything else (database, data dir) comes from ``marconi.config``. Base URLs are configurable so that tests point
the scrapers at a local server replaying recorded responses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from marconi.config import ConfigError
from marconi.setting_types import parse_bool

SPOTIFY_API_URL = "https://api.spotify.com/v1/"
SPOTIFY_TOKEN_URL = "https://accounts.spotify.com/api/token"
WIKIDATA_SPARQL_URL = "https://query.wikidata.org/sparql"
COMMONS_API_URL = "https://commons.wikimedia.org/w/api.php"

ENV_VARS = {
    "SPOTIPY_CLIENT_ID": "spotify_client_id",
    "SPOTIPY_CLIENT_SECRET": "spotify_client_secret",
    "MARCONI_SPOTIFY_API_URL": "spotify_api_url",
    "MARCONI_SPOTIFY_TOKEN_URL": "spotify_token_url",
    "MARCONI_WIKIDATA_SPARQL_URL": "wikidata_sparql_url",
    "MARCONI_COMMONS_API_URL": "commons_api_url",
}


@dataclass(frozen=True)
class ScraperConfig:
    """Credentials and endpoints of the outside services."""

    spotify_client_id: str | None = None
    spotify_client_secret: str | None = None
    spotify_api_url: str = SPOTIFY_API_URL
    spotify_token_url: str = SPOTIFY_TOKEN_URL
    wikidata_sparql_url: str = WIKIDATA_SPARQL_URL
    commons_api_url: str = COMMONS_API_URL
    live_tests: bool = False

    @property
    def has_spotify_credentials(self) -> bool:
        """True when both Spotify client-credentials values are set."""
        return bool(self.spotify_client_id and self.spotify_client_secret)

    def with_overrides(self, **overrides) -> ScraperConfig:
        """Return a copy with the given fields replaced."""
        return replace(self, **overrides)


def from_env(environ: dict | None = None) -> ScraperConfig:
    """Build the scraper config from SPOTIPY_CLIENT_ID/SECRET, MARCONI_*_URL and MARCONI_LIVE_TESTS."""
    env = os.environ if environ is None else environ
    values = {name: env[var] for var, name in ENV_VARS.items() if env.get(var)}
    raw = env.get("MARCONI_LIVE_TESTS", "").strip()
    try:
        values["live_tests"] = parse_bool(raw) if raw else False
    except ValueError:
        raise ConfigError(f"MARCONI_LIVE_TESTS must be one of 1/0, true/false, yes/no, on/off, got {raw!r}") from None
    return ScraperConfig(**values)
