"""Offline research for radio v2 (issue #14): accuracy and variety of radio scorings, in numpy.

Why offline: each scoring is a few lines of numpy here, so dozens of variants cost minutes, and only the winner is
written into the served SQL function radio(). The metrics are the served evaluation's own
(:func:`marconi.evaluation.radio.evaluate`: next-song HR@10 and HR@50, 3-seed recall@50, distinct@10,
max_share@10), on 5,000 next-song queries and every 3-seed radio of the evaluation playlists.

Splits (never tune on the holdout you report):

* ``val`` (default, for choosing): the demo's training part (``split_yes`` of yes_small, seed 42) split again,
  10% of its playlists with ≥ 5 songs held out with seed 1. Models train on the other 90%. The demo's holdout is
  not read.
* ``demo``: train on the demo's training part, evaluate on the demo's holdout (what `marconi eval radio` reports).
* ``unseen``: yes_small split with seed 2024, minus every playlist that was in the ``val`` holdout (those were
  looked at while choosing); train on its training part.
* ``val2``: a second validation split for choosing among the candidates ``val`` shortlisted, once the holdouts had
  been seen: the demo's training part split again with seed 7, minus the playlists of the ``val`` holdout. The
  demo's holdout is not read.

A variant is a model (training parameters) and a scoring. Scores for seeds S and song j:

* ``ip``: (Σ_s unit input vector of s) · output vector of j, divided by the query norm (the served score);
* ``- variety * hub_j``: CSLS hub penalty (hub = mean score over the 10 queries that score j highest);
* ``- beta * log(plays_j)``: popularity debiasing;
* ``+ w * ln(0.001 + Σ_s W[s, j])``: blend with co-occurrence, W = each song's top-``topn`` ±5 neighbours,
  normalised by its total count (marconi.recommenders.neighbours); songs outside every seed's neighbours get
  ln(0.001). ``sym`` counts every offset once, ``decay 1`` weighs offset d by 1/d, ``after`` counts only songs
  played after the seed (``after+0.5 before``: songs before it count half);
* ``- offset_j`` (``cap``): the exposure cap (marconi.recommenders.exposure), calibrated on one-seed radios of
  every training song so that no song fills more than ``cap`` of the top 10s;
* ``mmr``: greedy re-rank of the top 100, each pick penalised by ``mmr`` × its largest cosine with songs already
  picked.

Usage (about 1 s per variant and 15 s per new model on 2 cores; models are cached in --work):
    .venv/bin/python bench/eval_radio_variety.py                       # the sweep on the validation split
    .venv/bin/python bench/eval_radio_variety.py --split demo --only "served-0006 (ip);blend w 0.5 decay 1 + cap 0.05"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from marconi.evaluation.radio import evaluate, load_holdout, next_song_queries, split_yes
from marconi.importers.playlists import read_yes_playlists, read_yes_songs
from marconi.recommenders.exposure import blend_scores, calibration_candidates, exposure_offsets
from marconi.recommenders.neighbours import cooccurrence_counts, top_neighbours
from marconi.training.song2vec import SongParams, filter_playlist, fit, hub_scores, item_vectors

PREFIX = "s"


@dataclass(frozen=True)
class Scoring:
    """How a radio ranks songs from the model's scores (see the module docstring)."""

    variety: float = 0.0
    beta: float = 0.0
    w: float = 0.0
    topn: int = 100
    window: int = 5
    decay: float = 0.0
    back: float = 1.0
    mmr: float = 0.0
    cap: float = 0.0
    candidates: int = 0

    def weights(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-offset co-occurrence weights (after the seed, before it): 1/d^decay, times ``back`` before."""
        after = tuple(1.0 / d ** self.decay for d in range(1, self.window + 1))
        return after, tuple(self.back * x for x in after)


@dataclass(frozen=True)
class Variant:
    """One row of the table: a name, training parameters that differ from SongParams' defaults, a scoring."""

    name: str
    train: dict = field(default_factory=dict)
    scoring: Scoring = Scoring()


# the default from migration 0010 to 2026-12-05; since then `marconi train songs` serves epochs 40 + blend 0.1 +
# cap 0.07 (the training_variants() row "epochs 40 + blend w 0.1 decay 1 + cap 0.07", chosen with --split val2)
DEFAULT = Scoring(w=0.5, decay=1.0, cap=0.05)


def variants() -> list[Variant]:
    """Every variant the sweep measures: 0006's radio first, then one family of ideas after another."""
    out = [Variant("served-0006 (ip)")]
    out += [Variant(f"variety {v} (CSLS)", scoring=Scoring(variety=v)) for v in (0.25, 0.5, 0.75)]
    out += [Variant(f"pop beta {b}", scoring=Scoring(beta=b)) for b in (0.1, 0.2, 0.3, 0.4)]
    out += [Variant(f"mmr {m}", scoring=Scoring(mmr=m)) for m in (0.1, 0.2)]
    for name, kw in (("sym", {}), ("after", {"back": 0.0}), ("after+0.5 before", {"back": 0.5}),
                     ("decay 1", {"decay": 1.0})):
        out.append(Variant(f"cooc only {name}", scoring=Scoring(w=1000.0, **kw)))
        out += [Variant(f"blend w {w} {name}", scoring=Scoring(w=w, **kw)) for w in (0.2, 0.3, 0.5, 1.0)]
    for w in (0.2, 0.3):
        out += [Variant(f"blend w {w} + pop beta {b}", scoring=Scoring(w=w, beta=b)) for b in (0.2, 0.3)]
        out += [Variant(f"blend w {w} + variety {v}", scoring=Scoring(w=w, variety=v)) for v in (0.5, 0.75)]
    for ns in (0.5, 0.75, 1.0):
        out += [Variant(f"ns {ns}", train={"ns_exponent": ns})]
        out += [Variant(f"ns {ns} + blend w 0.3", train={"ns_exponent": ns}, scoring=Scoring(w=0.3))]
    for cap in (0.03, 0.05, 0.07, 0.1):
        out.append(Variant(f"cap {cap}", scoring=Scoring(cap=cap)))
        out += [Variant(f"blend w {w} decay 1 + cap {cap}", scoring=Scoring(w=w, decay=1.0, cap=cap))
                for w in (0.3, 0.5, 1.0)]
    out.append(Variant("default: blend w 0.5 decay 1 + cap 0.05, as served (candidates: 200 nearest + neighbours)",
                       scoring=replace(DEFAULT, candidates=200)))
    out += training_variants()
    return out


def training_variants() -> list[Variant]:
    """Longer training (more epochs spreads the output vectors: fewer hubs) and more negatives, with blend and cap."""
    out = []
    for train in ({"epochs": 30}, {"epochs": 40}, {"negative": 20}, {"epochs": 40, "negative": 20}):
        name = " ".join(f"{k} {v}" for k, v in train.items())
        out.append(Variant(name, train=train))
        for cap in (0.07, 0.1):
            out.append(Variant(f"{name} + cap {cap}", train=train, scoring=Scoring(cap=cap, candidates=200)))
            out += [Variant(f"{name} + blend w {w} decay 1 + cap {cap}", train=train,
                            scoring=Scoring(w=w, decay=1.0, cap=cap, candidates=200)) for w in (0.1, 0.2, 0.3, 0.5)]
    return out


# ---------------------------------------------------------------------------------------------------- the splits

def prepare(work: Path, source: Path) -> dict[str, tuple[Path, Path]]:
    """Write the splits under ``work``; return {name: (training file, holdout file)}."""
    demo, val, unseen, val2 = work / "demo", work / "val", work / "unseen", work / "val2"
    if not (demo / "holdout.txt").exists():
        split_yes(source, demo, seed=42)
    if not (val / "holdout.txt").exists():
        split_yes(demo, val, seed=1)
    for folder, parent, seed in ((unseen, source, 2024), (val2, demo, 7)):
        if not (folder / "holdout.txt").exists():
            split_yes(parent, folder, seed=seed)
            looked_at = set((val / "holdout.txt").read_text().splitlines()[2:])
            lines = (folder / "holdout.txt").read_text().splitlines()
            kept = [line for line in lines[2:] if line not in looked_at]
            (folder / "holdout.txt").write_text("\n".join(lines[:2] + kept) + "\n")
    return {name: (d / "train.txt", d / "holdout.txt") for name, d in (("val", val), ("demo", demo),
                                                                         ("unseen", unseen), ("val2", val2))}


def training_playlists(train: Path, artists: dict[int, str], p: SongParams) -> list[list[int]]:
    """The playlists `marconi train songs` would keep (the same filters), as song indices."""
    kept = []
    for _, songs in read_yes_playlists(train, PREFIX, 10**9):
        if songs and filter_playlist(songs, [artists.get(s, "") for s in songs], p):
            kept.append(songs)
    return kept


# ---------------------------------------------------------------------------------------------------- the model

class Model:
    """A trained song2vec model and the counts of its training playlists, as numpy arrays over song indices."""

    def __init__(self, train: Path, artists: dict[int, str], n_songs: int, options: dict, cache: Path):
        """Train (or load from ``cache``) song2vec with SongParams(**options) on ``train``."""
        p = SongParams(**options)
        playlists = training_playlists(train, artists, p)
        tag = hashlib.sha1(json.dumps([str(train), asdict(p)], sort_keys=True).encode()).hexdigest()[:12]
        path = cache / f"model-{tag}.npz"
        if not path.exists():
            t0 = time.time()
            model = fit([[str(s) for s in pl] for pl in playlists], p, progress=False)
            ids, qv, iv, _ = item_vectors(model, p.scoring)
            out = iv[:, : qv.shape[1]]
            np.savez(path, ids=np.array(ids), qv=qv, out=out, hub=hub_scores(qv, out))
            print(f"# trained {options or 'defaults'} in {time.time() - t0:.0f}s", file=sys.stderr)
        z = np.load(path)
        self.ids, self.qv, self.out, self.hub = z["ids"], z["qv"], z["out"], z["hub"]
        self.row = {int(s): i for i, s in enumerate(self.ids)}
        self.playlists, self.n_songs = playlists, n_songs
        plays = np.bincount(np.concatenate([np.asarray(pl) for pl in playlists]), minlength=n_songs)
        self.plays = plays[self.ids].astype(np.float64)
        self.unit_out = self.out / np.maximum(np.linalg.norm(self.out, axis=1, keepdims=True), 1e-12)
        self._neighbours: dict[int, object] = {}

    def offsets(self, s: Scoring) -> np.ndarray:
        """Exposure offsets for ``s`` (without its cap), calibrated as `marconi train songs` does."""
        key = ("offsets", s)
        if key not in self._neighbours:
            cand, scores = calibration_candidates(self.qv, self.out, self.neighbours(s), s.w,
                                                  np.arange(len(self.ids)))
            self._neighbours[key] = exposure_offsets(cand, scores, self.plays, len(self.ids), s.cap)
        return self._neighbours[key]

    def neighbours(self, s: Scoring):
        """W restricted to the model's songs: row = seed row, column = candidate row (csr)."""
        key = (s.topn, s.weights())
        if key not in self._neighbours:
            import scipy.sparse as sp

            after, before = s.weights()
            counts = cooccurrence_counts(self.playlists, self.n_songs, after, before)
            src, dst, wts = top_neighbours(counts, s.topn)
            keep = np.isin(src, self.ids) & np.isin(dst, self.ids)
            pos = np.full(self.n_songs, -1)
            pos[self.ids] = np.arange(len(self.ids))
            self._neighbours[key] = sp.csr_matrix((wts[keep], (pos[src[keep]], pos[dst[keep]])),
                                                  shape=(len(self.ids), len(self.ids)))
        return self._neighbours[key]


def table_header(width: int = 44) -> str:
    """The header of the printed table: the variant's name in ``width`` characters, then the five metrics."""
    return f"{'variant':<{width}}{'HR@10':>8}{'HR@50':>8}{'recall@50':>11}{'distinct@10':>13}{'max_share@10':>14}"


def table_row(name: str, r: dict, width: int = 44) -> str:
    """One variant's row under :func:`table_header` (``r``: marconi.evaluation.radio.evaluate's result)."""
    return (f"{name[:width - 1]:<{width}}{r['HR@10']:>8.4f}{r['HR@50']:>8.4f}{r['recall@50']:>11.4f}"
            f"{r['distinct@10']:>13,}{r['max_share@10']:>14.4f}")


class NumpyRadio:
    """A :class:`marconi.recommenders.Recommender` that scores every song of a :class:`Model` in numpy."""

    def __init__(self, model: Model, scoring: Scoring, name: str):
        """Rank by ``scoring``; seeds the model does not know are ignored, as the served radio ignores them."""
        self.m, self.s, self.name = model, scoring, name
        self.log_plays = np.log(np.maximum(model.plays, 1.0))

    def scores(self, rows: list[int]) -> np.ndarray:
        """The score of every song for seeds given as model rows."""
        m, s = self.m, self.s
        q = m.qv[rows].sum(axis=0)
        score = m.out @ q / max(np.linalg.norm(q), 1e-12)
        if s.variety:
            score -= s.variety * m.hub
        if s.beta:
            score -= s.beta * self.log_plays
        if s.w:
            score = blend_scores(score, np.asarray(m.neighbours(s)[rows].sum(axis=0)).ravel(), s.w)
        if s.candidates:  # as served: only the nearest by ip and the seeds' neighbours are ranked
            ip = m.out @ q
            allowed = np.zeros(len(score), bool)
            allowed[np.argpartition(-ip, s.candidates)[: s.candidates]] = True
            if s.w:
                allowed[m.neighbours(s)[rows].indices] = True
            score[~allowed] = -np.inf
        if s.cap:
            score -= m.offsets(s)
        return score

    def recommend(self, seeds, k):
        """Track keys of the k best songs, seeds left out."""
        rows = [m for m in (self.m.row.get(int(x.split(":")[1])) for x in seeds) if m is not None]
        if not rows:
            return []
        score = self.scores(rows)
        score[rows] = -np.inf
        top = np.argpartition(-score, 100)[:100] if self.s.mmr else np.argpartition(-score, k)[: k + 1]
        top = top[np.argsort(-score[top], kind="stable")]
        if self.s.mmr:
            top = self._mmr(top, score, k)
        return [f"{PREFIX}:{self.m.ids[i]}" for i in top[:k]]

    def _mmr(self, cand: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
        """Greedy maximal marginal relevance over ``cand``: score minus mmr × max cosine to the songs picked."""
        vec = self.m.unit_out[cand]
        picked, penalty = [], np.zeros(len(cand))
        base = score[cand].copy()
        for _ in range(min(k, len(cand))):
            gain = base - self.s.mmr * penalty
            gain[picked] = -np.inf
            best = int(np.argmax(gain))
            picked.append(best)
            penalty = np.maximum(penalty, vec @ vec[best])
        return cand[picked]


def main() -> None:
    """Run the sweep and print one table row per variant."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/playlists/yes_small"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/marconi-radio-variety"))
    ap.add_argument("--split", choices=("val", "demo", "unseen", "val2"), default="val")
    ap.add_argument("--only", default="", help="variant names separated by ';' (default: all)")
    ap.add_argument("--training", action="store_true", help="only the longer-training rows (training_variants())")
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    splits = prepare(args.work, args.data)
    train, holdout = splits[args.split]
    songs = read_yes_songs(args.data / "song_hash.txt", PREFIX)
    artists = {i: t.artist.lower() for i, t in songs.items()}
    plists = load_holdout(holdout, PREFIX)
    pairs = next_song_queries(plists, args.queries)
    chosen = [v for v in (training_variants() if args.training else variants())
              if not args.only or v.name in args.only.split(";")]
    models: dict[str, Model] = {}
    print(f"# {' '.join(sys.argv)}\n# split {args.split}: train {train}, holdout {holdout} "
          f"({len(plists)} playlists, {len(pairs)} next-song queries)")
    print(table_header())
    rows = []
    for v in chosen:
        key = json.dumps(v.train, sort_keys=True)
        if key not in models:
            models[key] = Model(train, artists, max(songs) + 1, v.train, args.work)
        r = evaluate(NumpyRadio(models[key], v.scoring, v.name), pairs, plists, progress=False)
        rows.append({**r, "train": v.train, "scoring": asdict(v.scoring)})
        print(table_row(v.name, r), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
