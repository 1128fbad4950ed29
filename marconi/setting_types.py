"""The value types of Marconi's settings (marconi.config): how each environment variable's text is read and checked.

Numbers are ASCII only (``int("١٢")`` is 12 to Python, not here), booleans are 1/0, true/false, yes/no, on/off, lists
are split at commas or spaces, and each check raises ValueError, which the settings turn into one line naming the
variable and what it accepts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, AllowInfNan, BeforeValidator, Field, Strict
from pydantic_settings import NoDecode

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


_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")
_ASCII_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _text_read_by(parse: Callable[[str], Any]) -> BeforeValidator:
    """A string is read by ``parse`` (its ValueError becomes the field's one-line error); other values pass as given."""
    return BeforeValidator(lambda v: parse(v) if isinstance(v, str) else v)


def _ascii(pattern: re.Pattern, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser taking only ``pattern`` (ASCII digits: ``int`` and ``float`` also read "١٢", "1_0", "inf")."""
    def parse(s: str):
        if not pattern.fullmatch(s.strip()):
            raise ValueError(s)
        return convert(s.strip())

    return parse


def _to_path(value):
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(value)
        value = Path(value)
    return value.expanduser() if isinstance(value, Path) else value


def _split_list(value, separators: str):
    """A string becomes a tuple of its items (split at ``separators``, a regex); blank items are dropped."""
    return tuple(p for p in re.split(separators, value.strip()) if p) if isinstance(value, str) else value


def check(test: Callable[[Any], bool]) -> AfterValidator:
    """An after-validator raising ValueError (the field's one-line error) when ``test`` says no."""
    def check(value):
        if not test(value):
            raise ValueError(value)
        return value

    return AfterValidator(check)


def networks_ok(value: str) -> bool:
    try:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)
    except ValueError:
        return False
    return True


def rates_ok(value: str) -> bool:
    if not value:
        return True
    from limits import parse_many  # Flask-Limiter's own reader of "30/minute;500/hour"

    try:
        return bool(parse_many(value))
    except ValueError:
        return False


def storage_ok(value: str) -> bool:
    from limits.storage import SCHEMES

    return value.split("://", 1)[0] in SCHEMES and "://" in value


_ORIGIN = re.compile(r"\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
API_KEY = re.compile(r"[\x21-\x7e]{16,}")  # visible ASCII: it travels in a header

Integer = Annotated[int, Strict(), _text_read_by(_ascii(_ASCII_INTEGER, int))]
Number = Annotated[float, Strict(), AllowInfNan(False), _text_read_by(_ascii(_ASCII_NUMBER, float))]
Flag = Annotated[bool, Strict(), _text_read_by(parse_bool)]
Text = Annotated[str, Strict(), Field(min_length=1)]
Folder = Annotated[Path, BeforeValidator(_to_path)]
PostgresUrls = Annotated[tuple[str, ...], NoDecode, BeforeValidator(lambda v: _split_list(v, r"[\s,]+(?=\S*://)")),
                         check(lambda urls: all(u.startswith(("postgresql://", "postgres://")) for u in urls))]
Origins = Annotated[tuple[str, ...], NoDecode, BeforeValidator(lambda v: _split_list(v, r"[\s,]+")),
                    check(lambda origins: all(_ORIGIN.fullmatch(o) for o in origins))]


def _lower(v):
    return v.strip().lower() if isinstance(v, str) else v


def _upper(v):
    return v.strip().upper() if isinstance(v, str) else v


LOWERCASE = BeforeValidator(_lower)  # a string setting read in lower case ("CPU" → "cpu")
UPPERCASE = BeforeValidator(_upper)
