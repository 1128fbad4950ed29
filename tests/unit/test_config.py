"""Config parsing: defaults, environment variables, clear errors for bad values, logging set up once."""

import logging
from pathlib import Path

import pytest

from marconi.config import ENV_VARS, SETTINGS, Config, ConfigError, from_env, load
from marconi.logs import setup_logging
from marconi.setting_types import parse_bool


def test_defaults_without_environment():
    c = from_env({})
    assert c.database_url is None
    assert c.max_upload_bytes == 16 * 1024 * 1024
    assert c.image_confident_threshold == 0.5
    assert (c.gunicorn_workers, c.gunicorn_connections, c.gunicorn_timeout) == (2, 100, 120)
    assert c.hnsw_ef_search == 400
    assert c.model_dir == c.home / "models"
    assert c.pgdata == c.home / "pgdata"


def test_every_field_has_one_environment_variable():
    names = set(Config.model_fields)
    assert set(SETTINGS) == names
    assert len(ENV_VARS) == len(names)
    assert all(var in ("DATABASE_URL", "DATABASE_REPLICA_URLS") or var.startswith("MARCONI_") for var in ENV_VARS)


def test_environment_values_are_typed():
    c = from_env({"MARCONI_MAX_UPLOAD_BYTES": " 1024 ", "MARCONI_URL_FETCH_TIMEOUT": "2.5",
                  "MARCONI_IMAGE_RERANK": "yes", "MARCONI_URL_FETCH": "Off", "MARCONI_ANN": "HNSW",
                  "MARCONI_LOG_LEVEL": "debug", "MARCONI_HOME": "/tmp/m", "MARCONI_GUNICORN_WORKERS": "3",
                  "MARCONI_IMAGE_CONFIDENT_THRESHOLD": "0.7", "MARCONI_DEVICE": "CUDA:1",
                  "DATABASE_URL": "postgresql://u@h/db"})
    assert c.max_upload_bytes == 1024
    assert c.url_fetch_timeout == 2.5 and isinstance(c.url_fetch_timeout, float)
    assert c.image_rerank is True and c.url_fetch is False
    assert c.ann == "hnsw" and c.log_level == "DEBUG" and c.device == "cuda:1"
    assert c.home == Path("/tmp/m") and c.model_dir == Path("/tmp/m/models")
    assert c.gunicorn_workers == 3 and c.image_confident_threshold == 0.7
    assert c.database_url == "postgresql://u@h/db"


def test_empty_variables_keep_defaults():
    assert from_env({"MARCONI_MAX_UPLOAD_BYTES": "", "MARCONI_ANN": "  "}) == from_env({})


@pytest.mark.parametrize("word, value", [("1", True), ("true", True), ("YES", True), ("on", True), (" On ", True),
                                         ("0", False), ("false", False), ("No", False), ("off", False)])
def test_booleans_accept_the_usual_words(word, value):
    assert parse_bool(word) is value
    assert from_env({"MARCONI_URL_FETCH": word}).url_fetch is value


@pytest.mark.parametrize("word", ["maybe", "2", "ja", "truthy", "-1"])
def test_booleans_reject_anything_else(word):
    with pytest.raises(ConfigError) as err:
        from_env({"MARCONI_IMAGE_RERANK": word})
    assert str(err.value) == f"MARCONI_IMAGE_RERANK must be one of 1/0, true/false, yes/no, on/off, got {word!r}"


@pytest.mark.parametrize("var, raw, expected", [
    ("MARCONI_MAX_UPLOAD_BYTES", "abc", "an integer"),
    ("MARCONI_MAX_UPLOAD_BYTES", "1.5", "an integer"),
    ("MARCONI_MAX_UPLOAD_BYTES", "0", "an integer of at least 1"),
    ("MARCONI_HNSW_EF_SEARCH", "5000", "an integer from 1 to 1000"),
    ("MARCONI_URL_FETCH_TIMEOUT", "soon", "a number"),
    ("MARCONI_URL_FETCH_TIMEOUT", "nan", "a number"),
    ("MARCONI_IMAGE_CONFIDENT_THRESHOLD", "1.5", "a number from 0.0 to 1.0"),
    ("MARCONI_ANN", "faiss", "one of auto, hnsw, cube"),
    ("MARCONI_LOG_LEVEL", "loud", "one of DEBUG, INFO"),
    ("MARCONI_DEVICE", "gpu", "auto, cpu, cuda or cuda:N"),
    ("MARCONI_URL_FETCH_ALLOW_NETWORKS", "10.0.0.0/8,not-a-net", "a comma-separated list of networks"),
    ("MARCONI_GUNICORN_CONNECTIONS", "-2", "an integer of at least 1"),
])
def test_bad_values_name_the_variable_and_what_is_expected(var, raw, expected):
    with pytest.raises(ConfigError) as err:
        from_env({var: raw})
    message = str(err.value)
    assert message.startswith(f"{var} must be {expected}")
    assert message.endswith(f"got {raw!r}")
    assert isinstance(err.value, ValueError)


def test_the_documented_example_message():
    with pytest.raises(ConfigError, match=r"^MARCONI_MAX_UPLOAD_BYTES must be an integer.*, got 'abc'$"):
        from_env({"MARCONI_MAX_UPLOAD_BYTES": "abc"})


def test_networks_may_be_listed():
    c = from_env({"MARCONI_URL_FETCH_ALLOW_NETWORKS": "10.1.0.0/16, 192.168.5.7/32,::1/128"})
    assert c.url_fetch_allow_networks.startswith("10.1.0.0/16")


def test_overrides_are_checked_and_name_the_field():
    c = Config().with_overrides(home="/tmp/x", url_fetch_timeout=1, max_upload_bytes="2048")
    assert c.home == Path("/tmp/x") and c.url_fetch_timeout == 1.0 and c.max_upload_bytes == 2048
    with pytest.raises(ConfigError, match="^max_upload_bytes must be an integer"):
        Config().with_overrides(max_upload_bytes="abc")
    with pytest.raises(ConfigError, match="^image_rerank must be one of"):
        Config(image_rerank="sometimes")
    with pytest.raises(ConfigError, match="^url_fetch_timeout must be a number"):
        Config(url_fetch_timeout=True)
    with pytest.raises(ConfigError, match="unknown setting.*colour"):
        Config().with_overrides(colour="blue")


def test_load_takes_a_config_a_dict_or_nothing(monkeypatch):
    monkeypatch.setenv("MARCONI_HNSW_EF_SEARCH", "77")
    given = Config(hnsw_ef_search=5)
    assert load(given) is given
    assert load(None).hnsw_ef_search == 77
    assert load({"ann": "cube"}).hnsw_ef_search == 77 and load({"ann": "cube"}).ann == "cube"
    monkeypatch.setenv("MARCONI_HNSW_EF_SEARCH", "lots")
    with pytest.raises(ConfigError, match="MARCONI_HNSW_EF_SEARCH"):
        load({})


@pytest.fixture()
def clean_logging():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in ("gensim", "alembic")})
    root.handlers.clear()
    yield root
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_setup_logging_sets_the_level_once_and_quiets_libraries(clean_logging):
    setup_logging("debug")
    handlers = list(clean_logging.handlers)
    assert clean_logging.level == logging.DEBUG and len(handlers) >= 1
    assert logging.getLogger("gensim").level == logging.WARNING
    assert logging.getLogger("alembic").level == logging.WARNING
    setup_logging("ERROR")  # a second call changes the level, not the handlers
    assert clean_logging.level == logging.ERROR and clean_logging.handlers == handlers
    assert logging.getLogger("gensim").level == logging.ERROR
    with pytest.raises(ConfigError, match="log level must be one of"):
        setup_logging("chatty")
