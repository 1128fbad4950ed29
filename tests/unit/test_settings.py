"""The typed settings object (pydantic-settings): the environment read only by from_env, the home folder from
platformdirs (an earlier home kept), list and secret settings, and the README's table written from the fields."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import platformdirs
import pytest
from script_loader import load_script

from marconi import config
from marconi.config import SETTINGS, Config, ConfigError, default_home, from_env

ROOT = Path(__file__).resolve().parents[2]


def test_config_itself_never_reads_the_environment(monkeypatch):
    monkeypatch.setenv("MARCONI_HNSW_EF_SEARCH", "7")
    assert Config().hnsw_ef_search == 400 and from_env().hnsw_ef_search == 7
    monkeypatch.setenv("MARCONI_API_KEY", "short")  # refused when read
    assert Config().api_key is None
    with pytest.raises(ConfigError, match="^MARCONI_API_KEY must be"):
        from_env()


def test_only_the_exact_variable_names_are_read():
    assert from_env({"marconi_hnsw_ef_search": "7", "MARCONI_HNSW_EF_SEARCH ": "8"}).hnsw_ef_search == 400
    assert from_env({"MARCONI_HNSW_EF_SEARCH": "9"}).hnsw_ef_search == 9


def test_defaults_stay_readable_on_the_class():
    assert Config.max_image_pixels == Config().max_image_pixels == 40_000_000
    with pytest.raises(AttributeError):
        Config.no_such_setting  # noqa: B018


def test_settings_are_frozen_hashable_and_compared_by_value():
    a, b = from_env({"MARCONI_ANN": "cube"}), from_env({"MARCONI_ANN": "CUBE"})
    assert a == b and hash(a) == hash(b) and a != Config()
    with pytest.raises(ValueError):
        a.ann = "hnsw"


def test_unknown_settings_are_named():
    with pytest.raises(ConfigError, match="^unknown setting colour: known settings are database_url, "):
        Config(colour="blue")


# --------------------------------------------------------------------------------------------------- home folder
@pytest.fixture()
def homes(tmp_path, monkeypatch):
    """A user whose platformdirs folder differs from the earlier ~/.local/share default (as on macOS): (earlier,
    usual), neither created yet."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # also lifts the root rule
    usual = tmp_path / "Library" / "Application Support" / "marconi"
    monkeypatch.setattr(platformdirs, "user_data_path", lambda appname, appauthor=None: usual)
    config._say_earlier_home_kept.cache_clear()
    yield tmp_path / "xdg" / "marconi", usual
    config._say_earlier_home_kept.cache_clear()


def test_the_home_comes_from_platformdirs(homes):
    _, usual = homes
    assert default_home() == usual == Config().home
    assert Config().pgdata == usual / "pgdata"


def test_an_earlier_home_is_kept_and_said_once(homes, caplog):
    earlier, usual = homes
    (earlier / "pgdata").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="marconi.config"):
        assert default_home() == earlier and Config().home == earlier
    said = [r.getMessage() for r in caplog.records if r.name == "marconi.config"]
    assert len(said) == 1 and str(earlier) in said[0] and str(usual) in said[0] and "MARCONI_HOME" in said[0]
    usual.mkdir(parents=True)  # once the usual folder exists, it wins
    assert default_home() == usual


def test_on_linux_the_platformdirs_home_is_the_earlier_one(monkeypatch, tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("platformdirs names another folder here; the earlier one is kept when it exists")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert platformdirs.user_data_path("marconi", appauthor=False) == config._earlier_home() == tmp_path / "marconi"


def test_root_keeps_var_lib(monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setattr(config.os, "geteuid", lambda: 0)
    assert default_home() == Path("/var/lib/marconi")


def test_marconi_home_wins(tmp_path):
    assert from_env({"MARCONI_HOME": str(tmp_path / "h")}).home == tmp_path / "h"


# ----------------------------------------------------------------------------------------- lists and secrets
def test_replica_urls_are_a_list_that_keeps_multi_host_urls_whole():
    c = from_env({"DATABASE_REPLICA_URLS": "postgresql://r1/db, postgres://h1:5432,h2:5433/db\tpostgresql://r3/db"})
    assert c.database_replica_urls == ("postgresql://r1/db", "postgres://h1:5432,h2:5433/db", "postgresql://r3/db")
    assert Config().database_replica_urls == ()


def test_cors_origins_are_a_list():
    assert from_env({"MARCONI_CORS_ORIGINS": "https://a.example, http://localhost:5000"}).cors_origins == (
        "https://a.example", "http://localhost:5000")
    assert from_env({"MARCONI_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    assert Config(cors_origins=["https://b.example:8443"]).cors_origins == ("https://b.example:8443",)


@pytest.mark.parametrize("rate", ["30/minute", "10/second;300/hour", "30 per minute", "5/Hour"])
def test_rates_are_read_as_flask_limiter_reads_them(rate):
    assert from_env({"MARCONI_RATE_LIMIT_UPLOADS": rate}).rate_limit_uploads == rate.lower()


def test_the_api_key_is_a_secret():
    key = "a" * 8 + "-Secret-Key-1234"
    c = from_env({"MARCONI_API_KEY": key})
    assert c.api_key.get_secret_value() == key and key not in repr(c) and key not in str(c)
    assert c.with_overrides(hnsw_ef_search=3).api_key.get_secret_value() == key
    with pytest.raises(ConfigError) as err:
        Config(api_key="with space in the key")
    assert str(err.value).endswith("got a value of 21 characters")


# ------------------------------------------------------------------------------------------------ README table
def test_every_setting_says_what_it_does_and_accepts():
    for name, s in SETTINGS.items():
        assert s.what and s.expected and s.shown_default, name
        assert s.env == "DATABASE_URL" or s.env == "DATABASE_REPLICA_URLS" or s.env == f"MARCONI_{name.upper()}"


def test_the_readme_table_is_the_scripts_output():
    script = load_script("config_table")
    table = script.table()
    assert len(table.splitlines()) == len(SETTINGS) + 2
    assert all(f"| `{s.env}` |" in table for s in SETTINGS.values())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert script.replaced(readme) == readme, "stale: run scripts/config_table.py --write README.md"
