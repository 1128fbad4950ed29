"""Settings read numbers in ASCII only (issue 13): ``int("١٢")`` is 12 to Python, and ``float`` reads "inf" and
"1_0" (no database)."""

import pytest

from marconi.config import Config, ConfigError, from_env


# ----------------------------------------------------------------------------------- settings: ASCII numbers only
@pytest.mark.parametrize("var, raw", [
    ("MARCONI_MAX_UPLOAD_BYTES", "١٢"), ("MARCONI_MAX_UPLOAD_BYTES", "１２"), ("MARCONI_MAX_UPLOAD_BYTES", "1_000"),
    ("MARCONI_GUNICORN_WORKERS", "٢"), ("MARCONI_URL_FETCH_TIMEOUT", "٣.٥"), ("MARCONI_URL_FETCH_TIMEOUT", "inf"),
    ("MARCONI_URL_FETCH_TIMEOUT", "1_0"), ("MARCONI_SWAP_WAIT_SECONDS", "Infinity"), ("MARCONI_DEVICE", "cuda:١"),
])
def test_settings_take_numbers_in_ascii_only(var, raw):
    with pytest.raises(ConfigError, match=f"^{var} must be"):
        from_env({var: raw})


def test_settings_still_take_plain_numbers():
    c = from_env({"MARCONI_MAX_UPLOAD_BYTES": " 2048 ", "MARCONI_URL_FETCH_TIMEOUT": "2.5e0",
                  "MARCONI_DEVICE": "cuda:1", "MARCONI_SWAP_WAIT_SECONDS": ".5"})
    assert (c.max_upload_bytes, c.url_fetch_timeout, c.device, c.swap_wait_seconds) == (2048, 2.5, "cuda:1", 0.5)
    with pytest.raises(ConfigError, match="^url_fetch_timeout must be a number"):
        Config(url_fetch_timeout=float("inf"))
