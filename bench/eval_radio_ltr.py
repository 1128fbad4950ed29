"""Offline research for radio accuracy (issue #14): a learned (learning-to-rank) scoring over per-candidate features.

The served radio ranks by ``ip + blend · ln(0.001 + cooc) − exposure`` with hand-chosen weights. Here the weights of
a linear score over a few features the SQL function can compute cheaply are *fitted* instead, by a conditional
logit (softmax over each query's candidates, the true next song as the label: a listwise loss whose optimum is the
next song on top), on next-song pairs from the TRAINING playlists only:

* the split's training playlists are split again (10% of those with ≥ 5 songs, seed 3: the "fit" playlists);
  song2vec and the co-occurrence counts are trained on the rest, the features are computed for the fit playlists'
  (current → next) pairs, and the weights fitted on them (features of a pair never include the pair's own count);
* the fitted weights are then applied to the model trained on the whole training part (as `marconi train songs`
  would), and evaluated by the served metric code on the split's holdout. Hyper-parameters (feature sets, L2, cap)
  are chosen on ``--split val``; ``demo`` and ``unseen`` report the chosen ones once.

Features of candidate j for seeds S (candidates: the ``near`` best by ip and the seeds' co-occurrence neighbours,
as served):

* ``ip``: the served song2vec score; ``lc``: ln(0.001 + Σ_s W[s, j]) with W the served neighbours (±5, 1/d,
  top 100, divided by the seed's total); ``nb``: j among the seeds' neighbours (0/1);
* ``adj``: ln(0.001 + Σ_s A[s, j]), A the same with only adjacent songs (±1) counted; ``after``: the same, only
  the song right after the seed;
* ``lp``: ln(plays of j); ``hub``: j's CSLS hub score; ``art``: j by a seed's artist (0/1);
* ``ipr``: ln(1 + j's rank by ip among the candidates).

Per-song terms (lp, hub) cost radio() nothing: they fold into the stored per-song offset (song_vectors.exposure).

Usage:
    nice -n 10 .venv/bin/python bench/eval_radio_ltr.py --split val
    nice -n 10 .venv/bin/python bench/eval_radio_ltr.py --split demo --only "ip+lc+lp, cap 0.07"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_radio_variety import PREFIX, Model, Scoring, prepare, table_header, table_row  # noqa: E402

from marconi.evaluation.radio import evaluate, load_holdout, load_tags, next_song_queries, split_yes  # noqa: E402
from marconi.importers.playlists import read_yes_songs  # noqa: E402
from marconi.recommenders.exposure import EPS, exposure_offsets  # noqa: E402
from marconi.recommenders.neighbours import cooccurrence_counts, top_neighbours  # noqa: E402

SERVED = Scoring(w=0.5, decay=1.0, cap=0.05)  # the served neighbours: ±5, 1/d, top 100
ALL_FEATURES = ("ip", "lc", "nb", "adj", "after", "lp", "hub", "art", "ipr")
EXTRA_FEATURES = ("ease", "ip2", "ip3", "lcr", "tag")  # research only: radio() would need new tables or vectors
EASE_LAMBDA = 5000.0  # the best EASE


@dataclass(frozen=True)
class Learned:
    """One learned variant: its features, L2 strength, candidates and exposure cap (0: none)."""

    name: str
    features: tuple[str, ...]
    l2: float = 1e-3
    near: int = 200
    cap: float = 0.0
    fixed: dict = field(default_factory=dict, hash=False, compare=False)  # weights given, not fitted
    gbm: bool = False  # a gradient-boosted tree model instead (a ceiling for the features: SQL cannot serve it)


def learned_variants() -> list[Learned]:
    """The variants measured, simplest first; the served default's formula as a fixed-weight reference."""
    out = [Learned("served formula: ip + 0.5 lc, cap 0.05", ("ip", "lc"), cap=0.05, fixed={"ip": 1.0, "lc": 0.5}),
           Learned("served formula, no cap", ("ip", "lc"), fixed={"ip": 1.0, "lc": 0.5})]
    sets = [("ip", "lc"), ("ip", "lc", "nb"), ("ip", "lc", "lp"), ("ip", "lc", "nb", "lp"),
            ("ip", "lc", "nb", "lp", "hub"), ("ip", "lc", "adj", "nb", "lp"), ("ip", "lc", "adj", "after", "nb", "lp"),
            ("ip", "lc", "nb", "lp", "art"), ("ip", "lc", "nb", "lp", "ipr"), ALL_FEATURES]
    for f in sets:
        out.append(Learned("+".join(f), f))
    for f in (("ip", "lc", "nb", "lp"), ("ip", "lc", "adj", "nb", "lp"), ALL_FEATURES):
        for cap in (0.05, 0.07, 0.1):
            out.append(Learned(f"{'+'.join(f)}, cap {cap}", f, cap=cap))
    for f in (("ip", "ease"), ("ip", "lc", "nb", "ease"), ("ip", "ip2"), ("ip", "ip2", "ip3"),
              ("ip", "ip2", "ip3", "lc", "nb"), ("ip", "ip2", "ip3", "lc", "nb", "ease")):
        out.append(Learned("+".join(f), f))
    for f in (("ip", "lc", "nb", "lcr"), ("ip", "ipr", "lcr"), ("ip", "lc", "nb", "ipr", "lcr")):
        out.append(Learned("+".join(f), f))
    out.append(Learned("gbm: ip+lc+nb+lp", ("ip", "lc", "nb", "lp"), gbm=True))
    out.append(Learned("gbm: all", ALL_FEATURES + EXTRA_FEATURES, gbm=True))
    out.append(Learned("ip+lc+nb+tag", ("ip", "lc", "nb", "tag")))
    out.append(Learned("gbm: ip+lc+nb+tag", ("ip", "lc", "nb", "tag"), gbm=True))
    for w in (0.3, 0.5):
        for nb in (0.5, 1.0):
            for cap in (0.07, 0.1):
                out.append(Learned(f"fixed ip + {w} lc + {nb} nb, cap {cap}", ("ip", "lc", "nb"), cap=cap,
                                   fixed={"ip": 1.0, "lc": w, "nb": nb}))
    out.append(Learned("ip+lc+nb, cap 0.07", ("ip", "lc", "nb"), cap=0.07))
    out.append(Learned("served formula with blend 0.1, cap 0.07", ("ip", "lc"), cap=0.07, fixed={"ip": 1.0, "lc": 0.1}))
    for near in (100, 400):
        out.append(Learned(f"ip+lc+nb+lp, near {near}", ("ip", "lc", "nb", "lp"), near=near))
    return out


# ---------------------------------------------------------------------------------------------------- features

class Features:
    """Per-candidate features of radio queries against one trained :class:`Model`."""

    def __init__(self, model: Model, artists: dict[int, str]):
        """Precompute the neighbour tables and per-song terms the features read."""
        self.m = model
        self.W = model.neighbours(SERVED)
        self.A = self._table((1.0,), (1.0,))
        self.F = self._table((1.0,), (0.0,))
        self.lp = np.log(np.maximum(model.plays, 1.0))
        art = [artists.get(int(i), "") for i in model.ids]
        codes = {a: n for n, a in enumerate(sorted(set(art)))}
        self.artist = np.array([codes[a] if a else -1 for a in art])
        self._ease: np.ndarray | None = None
        self.tags: dict[int, frozenset] = {}  # song index → Last.fm tag ids (feature tag), set by the caller
        self.others: list[Model] = []  # models trained with other seeds (features ip2, ip3), set by the caller

    def ease(self) -> np.ndarray:
        """EASE item-item weights (Steck 2019) over the model's songs, from the playlists as song sets."""
        if self._ease is None:
            m = self.m
            pos = np.full(m.n_songs, -1)
            pos[m.ids] = np.arange(len(m.ids))
            rows = [(i, c) for i, pl in enumerate(m.playlists) for c in set(pos[pl].tolist()) if c >= 0]
            r, c = np.array(rows).T
            X = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(m.playlists), len(m.ids)))
            G = (X.T @ X).toarray() + EASE_LAMBDA * np.eye(len(m.ids))
            P = np.linalg.inv(G)
            B = -P / np.diag(P)
            np.fill_diagonal(B, 0.0)
            self._ease = B
        return self._ease

    def tag_jaccard(self, rows: list[int], cand: np.ndarray) -> np.ndarray:
        """Mean over the seeds of the Jaccard similarity of a seed's and each candidate's tags (0 untagged)."""
        out = np.zeros(len(cand))
        for r in rows:
            mine = self.tags.get(int(self.m.ids[r]))
            if mine:
                out += [len(mine & t) / len(mine | t) if (t := self.tags.get(int(self.m.ids[c]))) else 0.0
                        for c in cand]
        return out / len(rows)

    def other_ip(self, rows: list[int], k: int) -> np.ndarray:
        """The ip score of every song of this model from the k-th other model (0 where it lacks a song)."""
        o = self.others[k]
        keep = [o.row.get(int(self.m.ids[r])) for r in rows]
        keep = [x for x in keep if x is not None]
        out = np.zeros(len(self.m.ids))
        if keep:
            q = o.qv[keep].sum(axis=0)
            sc = o.out @ q / max(np.linalg.norm(q), 1e-12)
            mine = np.array([o.row.get(int(i), -1) for i in self.m.ids])
            out[mine >= 0] = sc[mine[mine >= 0]]
        return out

    def _table(self, after, before) -> sp.csr_matrix:
        """Top-100 normalised co-occurrence with the given per-offset weights, over the model's rows."""
        m = self.m
        counts = cooccurrence_counts(m.playlists, m.n_songs, after, before)
        src, dst, wts = top_neighbours(counts, 100)
        keep = np.isin(src, m.ids) & np.isin(dst, m.ids)
        pos = np.full(m.n_songs, -1)
        pos[m.ids] = np.arange(len(m.ids))
        return sp.csr_matrix((wts[keep], (pos[src[keep]], pos[dst[keep]])), shape=(len(m.ids), len(m.ids)))

    def query(self, rows: list[int], names: tuple[str, ...], near: int) -> tuple[np.ndarray, np.ndarray]:
        """(candidate rows, features × candidates matrix) for seeds given as model rows; seeds left out."""
        m = self.m
        q = m.qv[rows].sum(axis=0)
        ip_all = m.out @ q
        wsum = self.W[rows].sum(axis=0).A1
        allowed = np.zeros(len(ip_all), bool)
        allowed[np.argpartition(-ip_all, near)[:near]] = True
        allowed[self.W[rows].indices] = True
        allowed[rows] = False
        cand = np.flatnonzero(allowed)
        cols = []
        for f in names:
            if f == "ip":
                cols.append(ip_all[cand] / max(np.linalg.norm(q), 1e-12))
            elif f == "lc":
                cols.append(np.log(EPS + wsum[cand]))
            elif f == "nb":
                cols.append((wsum[cand] > 0).astype(float))
            elif f == "adj":
                cols.append(np.log(EPS + self.A[rows].sum(axis=0).A1[cand]))
            elif f == "after":
                cols.append(np.log(EPS + self.F[rows].sum(axis=0).A1[cand]))
            elif f == "lp":
                cols.append(self.lp[cand])
            elif f == "hub":
                cols.append(m.hub[cand])
            elif f == "art":
                own = set(self.artist[rows]) - {-1}
                cols.append(np.isin(self.artist[cand], list(own)).astype(float))
            elif f == "ipr":
                order = np.argsort(-ip_all[cand], kind="stable")
                rank = np.empty(len(cand))
                rank[order] = np.arange(len(cand))
                cols.append(np.log1p(rank))
            elif f == "ease":
                cols.append(self.ease()[rows].sum(axis=0)[cand])
            elif f == "lcr":  # ln(1 + rank by co-occurrence weight among the candidates; ties by ip)
                order = np.lexsort((-ip_all[cand], -wsum[cand]))
                rank = np.empty(len(cand))
                rank[order] = np.arange(len(cand))
                cols.append(np.log1p(rank))
            elif f == "tag":  # mean Jaccard of the seeds' and the candidate's Last.fm tags (yes_small's tags.txt)
                cols.append(self.tag_jaccard(rows, cand))
            elif f in ("ip2", "ip3"):
                cols.append(self.other_ip(rows, int(f[-1]) - 2)[cand])
            else:
                raise ValueError(f"unknown feature {f!r}: choose from {', '.join(ALL_FEATURES + EXTRA_FEATURES)}")
        return cand, np.vstack(cols)


def fit_gbm(feats: Features, pairs: list[tuple[int, int]], names: tuple[str, ...], near: int, negatives: int = 40):
    """A pointwise gradient-boosted classifier (next song or not) on each pair's candidates, negatives sampled."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    xs, ys = [], []
    for seed, nxt in pairs:
        cand, x = feats.query([seed], names, near)
        hit = np.flatnonzero(cand == nxt)
        if len(hit):
            neg = rng.choice(np.flatnonzero(cand != nxt), min(negatives, len(cand) - 1), replace=False)
            xs.append(x[:, np.concatenate([hit[:1], neg])].T)
            ys.append(np.r_[1, np.zeros(len(neg))])
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=0).fit(
        np.vstack(xs), np.concatenate(ys))


def fit_weights(feats: Features, pairs: list[tuple[int, int]], names: tuple[str, ...], near: int,
                l2: float) -> tuple[dict, float]:
    """Conditional-logit weights over ``names`` fitted on (seed row, next row) pairs; also the share of pairs
    whose next song is among the candidates (pairs where it is not cannot teach a ranking and are skipped)."""
    blocks, targets, found = [], [], 0
    for seed, nxt in pairs:
        cand, x = feats.query([seed], names, near)
        hit = np.flatnonzero(cand == nxt)
        if len(hit):
            found += 1
            blocks.append(x.T)
            targets.append(int(hit[0]))
    sizes = np.array([len(b) for b in blocks])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    X = np.vstack(blocks)
    mu, sd = X.mean(axis=0), np.maximum(X.std(axis=0), 1e-9)
    Z = (X - mu) / sd
    tgt = starts + np.array(targets)
    seg = np.repeat(np.arange(len(sizes)), sizes)

    def loss(w):
        s = Z @ w
        mx = np.maximum.reduceat(s, starts)
        e = np.exp(s - mx[seg])
        tot = np.add.reduceat(e, starts)
        p = e / tot[seg]
        val = -(s[tgt] - mx - np.log(tot)).mean() + l2 * (w @ w)
        grad = -(Z[tgt].sum(axis=0) - (p[:, None] * Z).sum(axis=0)) / len(sizes) + 2 * l2 * w
        return val, grad

    res = minimize(loss, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B")
    w = res.x / sd  # back to raw feature units (the offset mu·w is the same for every candidate)
    return dict(zip(names, w.tolist(), strict=True)), found / max(len(pairs), 1)


class LearnedRadio:
    """A recommender ranking the served candidates by a linear score over :class:`Features`, minus offsets."""

    def __init__(self, feats: Features, v: Learned, weights: dict, offsets: np.ndarray | None = None):
        """Score with ``weights``; ``offsets`` (per model row) are subtracted when given (the exposure cap)."""
        self.f, self.v, self.name = feats, v, v.name
        self.gbm = weights.get("gbm")
        self.w = None if self.gbm is not None else np.array([weights[n] for n in v.features])
        self.offsets = offsets

    def scored(self, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(candidate rows, their scores) for seeds given as model rows."""
        cand, x = self.f.query(rows, self.v.features, self.v.near)
        s = self.gbm.decision_function(x.T) if self.gbm is not None else self.w @ x
        if self.offsets is not None:
            s = s - self.offsets[cand]
        return cand, s

    def recommend(self, seeds, k):
        """Track keys of the k best candidates."""
        rows = [r for r in (self.f.m.row.get(int(x.split(":")[1])) for x in seeds) if r is not None]
        if not rows:
            return []
        cand, s = self.scored(rows)
        top = cand[np.argsort(-s, kind="stable")[:k]]
        return [f"{PREFIX}:{self.f.m.ids[i]}" for i in top]


def calibrate(radio: LearnedRadio, cap: float, top: int = 50) -> np.ndarray:
    """Exposure offsets for the learned score, calibrated as `marconi train songs` does (one-seed radios of every
    song weighted by its plays, no song in more than ``cap`` of the top 10s)."""
    n = len(radio.f.m.ids)
    cand = np.zeros((n, top), dtype=np.int64)
    scores = np.full((n, top), -1e9)
    for r in range(n):
        c, s = radio.scored([r])
        best = np.argsort(-s, kind="stable")[:top]
        cand[r, : len(best)], scores[r, : len(best)] = c[best], s[best]
    return exposure_offsets(cand, scores, radio.f.m.plays, n, cap)


def main() -> None:
    """Fit every learned variant on the training playlists and print its metrics on the split's holdout."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/playlists/yes_small"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/marconi-radio-variety"))
    ap.add_argument("--split", choices=("val", "demo", "unseen"), default="val")
    ap.add_argument("--only", default="", help="variant names separated by ';' (default: all)")
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--fit-pairs", type=int, default=6000)
    ap.add_argument("--model", default="{}", help="song2vec options as JSON, e.g. {\"epochs\": 40}")
    ap.add_argument("--coverage", action="store_true", help="also print how often the next song is a candidate")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    splits = prepare(args.work, args.data)
    train, holdout = splits[args.split]
    fit_dir = args.work / f"{args.split}-fit"
    if not (fit_dir / "holdout.txt").exists():
        split_yes(train.parent, fit_dir, seed=3)
    songs = read_yes_songs(args.data / "song_hash.txt", PREFIX)
    artists = {i: t.artist.lower() for i, t in songs.items()}
    n_songs = max(songs) + 1
    t0 = time.time()
    options = json.loads(args.model)
    inner = Features(Model(fit_dir / "train.txt", artists, n_songs, options, args.work), artists)
    full = Features(Model(train, artists, n_songs, options, args.work), artists)
    for feats, path in ((inner, fit_dir / "train.txt"), (full, train)):
        feats.others = [Model(path, artists, n_songs, {**options, "seed": seed}, args.work) for seed in (2, 3)]
        feats.tags = {int(k.split(":")[1]): v for k, v in load_tags(args.data / "tags.txt", PREFIX).items()}
    fit_pairs = [(inner.m.row[int(a.split(":")[1])], inner.m.row[int(b.split(":")[1])])
                 for a, b in next_song_queries(load_holdout(fit_dir / "holdout.txt", PREFIX), args.fit_pairs, seed=11)
                 if int(a.split(":")[1]) in inner.m.row and int(b.split(":")[1]) in inner.m.row]
    plists = load_holdout(holdout, PREFIX)
    pairs = next_song_queries(plists, args.queries)
    print(f"# {' '.join(sys.argv)}\n# split {args.split}: fit on {len(fit_pairs)} pairs of {fit_dir}/holdout.txt "
          f"(model on {fit_dir}/train.txt); evaluate on {holdout} ({len(plists)} playlists, {len(pairs)} queries); "
          f"features ready in {time.time() - t0:.0f}s", flush=True)
    if args.coverage:
        for near in (100, 200, 400, 800):
            rows = [(full.m.row.get(int(a.split(":")[1])), full.m.row.get(int(b.split(":")[1]))) for a, b in pairs]
            n_in = sum(1 for a, b in rows if a is not None and b is not None and b in full.query([a], ("ip",), near)[0])
            print(f"# next song among the candidates (near {near} + neighbours): {n_in / len(pairs):.4f}")
    print(f"{table_header(48)}  weights")
    out = []
    chosen = [v for v in learned_variants() if not args.only or v.name in args.only.split(";")]
    cache: dict = {}
    for v in chosen:
        if v.fixed:
            weights, found = v.fixed, None
        elif v.gbm:
            weights, found = {"gbm": fit_gbm(inner, fit_pairs, v.features, v.near)}, None
        else:
            key = (v.features, v.l2, v.near)
            if key not in cache:
                cache[key] = fit_weights(inner, fit_pairs, v.features, v.near, v.l2)
            weights, found = cache[key]
        radio = LearnedRadio(full, v, weights)
        if v.cap:
            radio = LearnedRadio(full, v, weights, calibrate(radio, v.cap))
        r = evaluate(radio, pairs, plists, progress=False)
        weights = {k: x for k, x in weights.items() if k != "gbm"}
        norm = {k: round(x / weights["ip"], 3) for k, x in weights.items()} if weights.get("ip") else weights
        out.append({**r, "features": v.features, "cap": v.cap, "near": v.near, "weights": weights,
                    "fit_coverage": found})
        print(f"{table_row(v.name, r, 48)}  {json.dumps(norm)}", flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
