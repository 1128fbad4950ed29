"""One log record is one line, whatever a user sent (issue 13), and settings read numbers in ASCII only (no
database: the request line of the app itself is checked in tests/api/test_hostile_input.py)."""

import io
import logging

import pytest

from marconi.config import Config, ConfigError, from_env
from marconi.logs import LOG_FORMAT, LogFormatter, log_safe, setup_logging

FORGED = "2026-01-01 00:00:00,000 INFO marconi: GET /admin 200 0.1ms rid=x"


@pytest.mark.parametrize("text, escaped", [
    ("/api/x\r\n" + FORGED, "/api/x\\r\\n" + FORGED),
    ("a\nb", "a\\nb"), ("a\rb", "a\\rb"), ("tab\there", "tab\\there"),
    ("next\x85line", "next\\x85line"), ("line\u2028sep", "line\\u2028sep"), ("para\u2029sep", "para\\u2029sep"),
    ("\x1b[31mred", "\\x1b[31mred"), ("nul\x00", "nul\\x00"), ("del\x7f", "del\\x7f"),
    ("plain ünïcode / ✓", "plain ünïcode / ✓"),
])
def test_log_safe_escapes_what_breaks_a_line(text, escaped):
    assert log_safe(text) == escaped
    assert len(log_safe(text).splitlines()) == 1


def _logger(stream) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter(LOG_FORMAT))
    logger = logging.getLogger("marconi.test_logging_safety")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_record_is_one_line_whatever_its_arguments_hold():
    out = io.StringIO()
    _logger(out).info("GET %s %s", "/api/x\r\n" + FORGED, "\u2028also")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("GET /api/x\\r\\n" + FORGED + " \\u2028also")


def test_a_traceback_is_indented_so_it_cannot_pass_for_a_record():
    out = io.StringIO()
    try:
        raise ValueError("bad input\n" + FORGED)
    except ValueError:
        _logger(out).exception("failed on %s", "/x\n" + FORGED)
    first, *rest = out.getvalue().splitlines()
    assert first.endswith("failed on /x\\n" + FORGED)
    assert rest and all(line.startswith("    ") for line in rest)
    assert "    " + FORGED in rest  # the exception's own text, indented


def test_setup_logging_writes_through_the_log_formatter():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    root.handlers.clear()  # here, in the test itself: pytest adds its capturing handlers after fixtures ran
    try:
        setup_logging("INFO")
        [handler] = root.handlers
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    assert isinstance(handler.formatter, LogFormatter) and handler.formatter._fmt == LOG_FORMAT


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
