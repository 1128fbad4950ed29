"""PCA for the indexed column: full encoder features (512-4096-d) → at most 100 unit-length dimensions (cube)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from marconi.db.cube import CUBE_MAX_DIM


@dataclass
class PCA:
    """A fitted PCA: ``mean`` (D,), ``components`` (k, D). Projections are L2-normalised."""

    mean: np.ndarray
    components: np.ndarray

    @property
    def dims(self) -> int:
        """Return the number of kept components (the indexed vectors' dimensions)."""
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, x: np.ndarray, dims: int) -> PCA:
        """Fit on rows of ``x`` keeping ``dims`` components (at most min(N, D), and ≤ cube's 100)."""
        dims = min(dims, CUBE_MAX_DIM, x.shape[0], x.shape[1])
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(mean.astype(np.float32), vt[:dims].astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project rows and L2-normalise them."""
        y = (np.atleast_2d(x) - self.mean) @ self.components.T
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    def to_bytes(self) -> bytes:
        """Serialise as .npz bytes."""
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, components=self.components)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PCA:
        """Load from .npz bytes."""
        z = np.load(io.BytesIO(data))
        return cls(z["mean"], z["components"])
