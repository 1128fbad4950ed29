"""The class space's parameters again, on a demo home's serving index, ranked as the served SQL ranks (hand-run).

The defaults of marconi.text.query.ClassSpaceParams (alpha, floor, power, minilm_weight, top_classes) were chosen
while the text benches took a second square root of the stored scores; this grid (243 settings, the other rules as
served) asks whether they still lead. Chosen on the even folder names and phrases, reported on the odd ones.

    .venv/bin/python bench/eval_text_grid.py --database URL     # about 1.5 minutes
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_text_methods import index_for, metrics  # noqa: E402
from eval_text_phrases import load_phrases  # noqa: E402

from marconi.config import Config  # noqa: E402
from marconi.encoders import load_encoder  # noqa: E402
from marconi.evaluation.text_images import query_of  # noqa: E402
from marconi.text.query import ClassSpace, ClassSpaceParams, class_text_vectors  # noqa: E402


class Memo(ClassSpace):
    """The class space with each query's sentence vector computed once for the whole grid."""

    _cos: dict = {}

    def cosines(self, text):
        if text not in Memo._cos:
            Memo._cos[text] = super().cosines(text)
        return Memo._cos[text]


def main() -> None:
    """Print the served setting's row and the ten best settings on the even half."""
    if "--database" not in sys.argv:
        raise SystemExit("usage: eval_text_grid.py --database URL (a demo home's database)")
    labels, stored = index_for(sys.argv)
    encoder = load_encoder("minilm", device="cpu", cache_dir=Config().model_dir)
    vectors = class_text_vectors(encoder, Config().model_dir)
    phrases = load_phrases()
    n_phrases = len(phrases)
    folders = sorted(set(labels))
    phrases += [(query_of(f), {f}) for f in folders]
    relevant = np.array([[label in wanted for label in labels] for _, wanted in phrases])
    index = np.concatenate([np.arange(n_phrases), np.arange(len(folders))])
    even, is_phrase = index % 2 == 0, np.arange(len(phrases)) < n_phrases
    served = ClassSpaceParams()
    rows = []
    for alpha, floor, power, weight, top in itertools.product((1.0, 1.5, 2.5), (0.2, 0.3, 0.4), (1.0, 2.0, 3.0),
                                                               (0.5, 1.0, 2.0), (30, 50, 100)):
        params = replace(served, alpha=alpha, floor=floor, power=power, minilm_weight=weight, top_classes=top)
        space = Memo(encoder, vectors, params=params)
        p10, _ = metrics(np.stack([space.score_stored(space.query(t), stored) for t, _ in phrases]), relevant)
        cells = [p10[even & is_phrase].mean(), p10[even & ~is_phrase].mean(), p10[~even & is_phrase].mean(),
                 p10[~even & ~is_phrase].mean(), p10[~is_phrase].mean()]
        rows.append(((cells[0] + cells[1]) / 2, params == served, (alpha, floor, power, weight, top), cells))
    rows.sort(key=lambda r: -r[0])
    print("| alpha, floor, power, MiniLM weight, top classes | even (chosen on) | phrases even | names even | "
          "phrases odd | names odd | names all |\n|---|---|---|---|---|---|---|")
    for rank, (score, is_served, setting, cells) in enumerate(rows):
        if rank < 10 or is_served:
            mark = " (served)" if is_served else ""
            print(f"| {setting}{mark} | {score:.4f} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
