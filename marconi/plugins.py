"""Optional parts (image search, pages, extra commands) that register themselves when their module exists."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from types import ModuleType


def optional_modules(names: Iterable[str]) -> Iterator[ModuleType]:
    """Yield each named module that can be imported; a missing module is skipped, any other error raises."""
    for name in names:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
