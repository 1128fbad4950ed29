"""The issue's example queries, served rule against the variants tried for them: the folders of the 10 best images.

Images as the index stores them (EfficientNet-Lite0, √p smoothed over the 5 nearest images; bench/eval_text_methods.py's
cache), or with ``--database URL`` the serving index of a demo home (its labels name the folders). "dog on a beach"
should find the dalmatians (Caltech's only dogs), "a vehicle with two wheels" Motorbikes.

    .venv/bin/python bench/eval_text_examples.py [--database URL] ["another query" ...]
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_text_methods import index_for  # noqa: E402

from marconi.config import from_env  # noqa: E402
from marconi.encoders import load_encoder  # noqa: E402
from marconi.text.query import ClassSpace, ClassSpaceParams, class_text_vectors  # noqa: E402

QUERIES = ["a vehicle with two wheels", "dog on a beach", "dog", "leopard", "aeroplane"]


def main() -> None:
    """Print, per variant and query, how many of the 10 best images come from each folder."""
    labels, stored = index_for(sys.argv)
    args = sys.argv[3:] if sys.argv[1:2] == ["--database"] else sys.argv[1:]
    model_dir = from_env().model_dir
    encoder = load_encoder("minilm", device="cpu", cache_dir=model_dir)
    vectors = class_text_vectors(encoder, model_dir)
    served = ClassSpaceParams()
    variants = {"served": served, "numbers not counted": replace(served, count_words=False),
                "head noun's classes not kept": replace(served, head_classes=0),
                "neither (served before 2026-12-05)": replace(served, count_words=False, head_classes=0)}
    for name, params in variants.items():
        space = ClassSpace(encoder, vectors, params=params)
        for query in args or QUERIES:
            top = np.argsort(-space.score_stored(space.query(query), stored), kind="stable")[:10]
            folders = ", ".join(f"{f} {n}" for f, n in Counter(labels[i] for i in top).most_common())
            print(f"| {name} | {query} | {folders} |")


if __name__ == "__main__":
    main()
