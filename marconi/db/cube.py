"""Conversions between numpy vectors and the text forms of PostgreSQL ``cube`` and pgvector ``vector``."""

from __future__ import annotations

import numpy as np

CUBE_MAX_DIM = 100


class TooManyDimensions(ValueError):
    """A vector wider than cube's 100-dimension limit."""


def check_dims(dims: int) -> None:
    """Raise TooManyDimensions when ``dims`` exceeds what a cube column can hold."""
    if dims > CUBE_MAX_DIM:
        raise TooManyDimensions(
            f"cube holds at most {CUBE_MAX_DIM} dimensions, got {dims}: reduce the vectors (e.g. PCA) first"
        )


def to_cube(vec) -> str:
    """Return the cube literal ``(x1, x2, ...)`` for a 1-d vector."""
    arr = np.asarray(vec, dtype=np.float64).ravel()
    check_dims(arr.size)
    if not np.all(np.isfinite(arr)):
        raise ValueError("vector has NaN or infinite coordinates")
    return "(" + ",".join(repr(float(x)) for x in arr) + ")"


def to_vector(vec) -> str:
    """Return the pgvector literal ``[x1,x2,...]`` for a 1-d vector."""
    arr = np.asarray(vec, dtype=np.float32).ravel()
    return "[" + ",".join(repr(float(x)) for x in arr) + "]"


def from_cube(text: str) -> np.ndarray:
    """Parse a cube point literal such as ``(1, 2, 3)`` back into a float64 array."""
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    if "),(" in body.replace(" ", ""):
        raise ValueError("not a point cube")
    return np.array([float(x) for x in body.split(",") if x.strip()], dtype=np.float64)


def to_pg_array(vec) -> str:
    """Return the PostgreSQL array literal ``{x1,x2,...}`` for a 1-d vector (for real[] columns via COPY)."""
    arr = np.asarray(vec, dtype=np.float32).ravel()
    return "{" + ",".join(repr(float(x)) for x in arr) + "}"
