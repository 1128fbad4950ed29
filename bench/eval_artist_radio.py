"""Artist and tag radio, offline: which artist vector to serve, and does tag radio beat popularity within the tag?

On the held-out playlists of a split (``marconi eval split``; the database holds its training part and a trained
song model), for every held-out playlist:

* artist radio: the seed is the artist of the playlist's first song (one the model knows); the targets are the
  playlist's other songs. recall@50 (share of the targets in the 50-song radio) and HR@10 (a target in the top 10);
* tag radio: the seed is the tag most of the playlist's songs carry (ties: the rarer tag); the targets are the
  playlist's songs. recall@50, HR@10, tag precision@50 (share of the radio carrying the tag) and distinct@10
  (different songs in all the top 10s).

Artist methods: the served radio (pooled mean vectors through SQL radio(artists => ...), blend and exposure
included), pooled vectors scored by song2vec alone (plain and play-weighted mean, numpy), an artist-only song2vec
(playlists as sequences of artists; songs ranked by their artist's cosine to the seed, then plays), and popularity.
Tag methods: the served radio(tags => ...) (medium mode, and ``--other-modes``), the variants of its medium-mode
score in numpy (TagScoring: candidates from the kNN of the tag vector, the tag's songs, the co-occurrence neighbours
of the tag's songs; a bonus b for songs carrying the tag; the served rows are checked against them), and the most
played songs carrying the tag.

    .venv/bin/python bench/eval_artist_radio.py --url postgresql://... \
        --holdout $MARCONI_HOME/datasets/yes_small/holdout.txt
    .venv/bin/python bench/eval_artist_radio.py --url postgresql://... --holdout ... --part tag --other-modes easy hard
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import sqlalchemy as sa
from scipy import sparse

from marconi.db.cube import from_cube
from marconi.evaluation.radio import load_holdout
from marconi.recommenders.pooled import pooled_vectors


def load(conn, prefix: str):
    """Songs in the model (keys, folded artists, unit query vectors, item vectors, plays) and tags of songs."""
    rows = conn.execute(sa.text(
        "SELECT t.id, t.key, marconi_fold(btrim(t.artist)), sv.qvec::text, sv.vec::text, "
        "(SELECT count(*) FROM playlist_tracks pt WHERE pt.track_id = t.id) FROM tracks t "
        "JOIN song_vectors sv ON sv.track_id = t.id ORDER BY t.id")).all()
    ids = [r[0] for r in rows]
    keys = [r[1] for r in rows]
    artists = [r[2] for r in rows]
    qv = np.array([from_cube(r[3]) for r in rows])
    dims = qv.shape[1]
    iv = np.array([from_cube(r[4])[:dims] for r in rows])
    plays = np.array([r[5] for r in rows], dtype=np.float64)
    tag_rows = conn.execute(sa.text("SELECT t.key, g.name FROM track_tags tt JOIN tracks t ON t.id = tt.track_id "
                                    "JOIN tags g ON g.id = tt.tag_id")).all()
    tags = defaultdict(set)
    for key, name in tag_rows:
        tags[key].add(name)
    seqs = conn.execute(sa.text(
        "SELECT array_agg(marconi_fold(btrim(t.artist)) ORDER BY pt.position) FROM playlist_tracks pt "
        "JOIN tracks t ON t.id = pt.track_id GROUP BY pt.playlist_id")).scalars().all()
    return ids, keys, artists, qv, iv, plays, tags, seqs


def metrics(radios: list[list[str]], targets: list[set[str]]) -> dict:
    """recall@50 and HR@10 over the queries."""
    rec = [len(set(r[:50]) & t) / len(t) for r, t in zip(radios, targets, strict=True)]
    hit = [bool(set(r[:10]) & t) for r, t in zip(radios, targets, strict=True)]
    return {"recall@50": float(np.mean(rec)), "HR@10": float(np.mean(hit)), "queries": len(radios)}


def top_keys(scores: np.ndarray, keys: list[str], k: int = 50) -> list[str]:
    """Keys of the ``k`` highest scores, best first."""
    idx = np.argpartition(-scores, k)[:k]
    return [keys[i] for i in idx[np.argsort(-scores[idx])]]


# ---------------------------------------------------------------------------------------------------- tag radio
KNN = 200  # radio()'s kNN candidates for a 50-song radio without seeds: greatest(200, n + 10)


class TagScoring:
    """radio()'s medium-mode score for a tag radio, in numpy: the song2vec score against the tag vector (rounded as
    the SQL rounds it), minus the song's exposure offset, plus the run's co-occurrence blend when the tag's songs
    share out their neighbours (as an asked artist's songs do)."""

    def __init__(self, conn, ids: list[int], iv: np.ndarray, tags: dict[str, set[str]], keys: list[str]):
        row = {t: i for i, t in enumerate(ids)}
        self.iv = iv
        self.exposure = np.zeros(len(ids))
        for track_id, exposure in conn.execute(sa.text("SELECT track_id, exposure FROM song_vectors")).all():
            self.exposure[row[track_id]] = exposure or 0.0
        self.blend = conn.execute(sa.text(
            "SELECT coalesce((metrics->'radio'->>'blend')::float8, 0) FROM model_runs "
            "WHERE id = (SELECT run_id FROM song_vectors LIMIT 1)")).scalar()
        self.qvec = {name: from_cube(q) for name, q in conn.execute(sa.text(
            "SELECT g.name, tv.qvec::text FROM tag_vectors tv JOIN tags g ON g.id = tv.tag_id")).all()}
        edges = [(row[a], row[b], w) for a, b, w in conn.execute(sa.text(
            "SELECT track_id, neighbour_id, weight FROM song_neighbours")).all() if a in row and b in row]
        src, dst, w = (np.array(x) for x in zip(*edges, strict=True)) if edges else ([], [], [])
        self.neighbours = sparse.csr_matrix((w, (src, dst)), shape=(len(ids), len(ids)))
        self.member = {t: np.array([t in tags.get(k, ()) for k in keys]) for t in self.qvec}

    def radio(self, tag: str, join: bool, share: str, bonus: float, co_top: int = 0, n: int = 50) -> np.ndarray:
        """Rows of the ``n``-song radio: candidates are the kNN of the tag vector, the tag's songs when ``join``
        and the co-occurrence neighbours of the tag's songs when ``share`` ("all" of them, or only those "in the
        kNN", or the S nearest the tag vector among those; each source gives 1/sources of its neighbour weights;
        only the ``co_top`` heaviest neighbours join when it is set); songs carrying the tag gain ``bonus`` (inf:
        only they)."""
        member = self.member[tag]
        ip = np.round(self.iv @ self.qvec[tag], 6)
        cand = np.zeros(len(ip), dtype=bool)
        cand[np.argpartition(-ip, KNN)[:KNN]] = True
        co = np.zeros(len(ip))
        sources = member & cand if share.startswith("in the kNN") else member
        if share.startswith("in the kNN, nearest "):  # only the S tag songs nearest the tag vector
            rows = np.flatnonzero(sources)
            sources = np.zeros(len(ip), dtype=bool)
            sources[rows[np.argsort(-ip[rows], kind="stable")][:int(share.rsplit(" ", 1)[1])]] = True
        if share and sources.any():
            co = self.neighbours.T @ (sources / sources.sum())
            joining = np.flatnonzero(co > 0)
            if co_top:
                joining = joining[np.lexsort((joining, -co[joining]))][:co_top]
            cand[joining] = True
        if join:
            cand |= member
        if np.isinf(bonus):
            cand &= member
        score = ip - self.exposure + self.blend * np.log(0.001 + co) + np.where(member, min(bonus, 1e9), 0.0)
        rows = np.flatnonzero(cand)
        return rows[np.lexsort((-ip[rows], -score[rows]))][:n]  # score, then distance (higher ip = nearer)


def tag_queries(holdout: list[list[str]], tags: dict[str, set[str]]) -> list[tuple[str, set[str]]]:
    """(tag most of the playlist's songs carry, the rarer on ties; the playlist's songs) for each playlist."""
    tag_songs = Counter(t for ts in tags.values() for t in ts)
    out = []
    for p in holdout:
        counts = Counter(t for k in p for t in tags.get(k, ()))
        if counts:
            out.append((min(counts, key=lambda t: (-counts[t], tag_songs[t], t)), set(p)))
    return out


def tag_radio(conn, holdout, ids, keys, iv, plays, tags, bonuses: list[float], nearest: list[int],
              co_top: list[int], modes: list[str]) -> None:
    """Print recall@50, HR@10, tag precision@50 and distinct@10 of the served tag radio, its variants and the
    popularity-within-tag baseline."""
    queries = tag_queries(holdout, tags)
    targets = [q[1] for q in queries]
    scoring = TagScoring(conn, ids, iv, tags, keys)
    radios = {f"served, {mode} mode (SQL radio(tags => ...))": [conn.execute(
        sa.text("SELECT key FROM radio(tags => :t, n => 50, exact => true, mode => :mode)"),
        {"t": [t], "mode": mode}).scalars().all() for t, _ in queries] for mode in modes}
    grid = [("kNN of the tag vector (0011-0014)", False, "", 0.0, 0),
            ("kNN + the tag's songs", True, "", 0.0, 0)]
    grid += [(f"kNN, tag bonus {b:g}", False, "", b, 0) for b in bonuses]
    grid += [(f"kNN + the tag's songs, tag bonus {b:g}", True, "", b, 0) for b in bonuses]
    for share in ("all", "in the kNN", *(f"in the kNN, nearest {k}" for k in nearest)):
        grid += [(f"kNN + co-occurrence of the tag's songs ({share}), tag bonus {b:g}", False, share, b, 0)
                 for b in [0.0, *bonuses]]
    for top in co_top:
        grid += [(f"kNN + the {top} heaviest co-occurrence neighbours of the tag's songs (in the kNN), tag bonus "
                  f"{b:g}", False, "in the kNN", b, top) for b in bonuses]
    grid += [("only the tag's songs (bonus inf)", True, "", np.inf, 0),
             ("only the tag's songs, co-occurrence of all (bonus inf)", True, "all", np.inf, 0)]
    cache = {}
    for label, join, share, bonus, top in grid:
        for t in {t for t, _ in queries}:
            cache[t] = [keys[i] for i in scoring.radio(t, join, share, bonus, top)]
        radios[label] = [cache[t] for t, _ in queries]
    served = radios["served, medium mode (SQL radio(tags => ...))"]
    same = {label: sum(a == b for a, b in zip(served, radios[label], strict=True)) for label, *_ in grid}
    closest = max(same, key=same.get)
    print(f"  the served radio's 50 songs, in order, are those of '{closest}' for {same[closest]} of "
          f"{len(queries)} queries")
    radios["popularity within the tag"] = [top_keys(np.where(scoring.member[t], plays, -1.0), keys)
                                           for t, _ in queries]
    print(f"tag radio: {len(queries)} held-out playlists (seed: the tag most of its songs carry; "
          f"{len({t for t, _ in queries})} tags)")
    for label, rs in radios.items():
        m = metrics(rs, targets)
        precision = np.mean([np.mean([t in tags.get(k, ()) for k in r[:50]]) for r, (t, _) in zip(rs, queries,
                                                                                                   strict=True)])
        distinct = len({k for r in rs for k in r[:10]})
        print(f"  {label:<62} recall@50 {m['recall@50']:.4f}  HR@10 {m['HR@10']:.4f}  "
              f"tag precision@50 {precision:.3f}  distinct@10 {distinct}")


def artist_radio(conn, holdout: list[list[str]], keys, artists, qv, iv, plays, seqs) -> None:
    """Print recall@50 and HR@10 of the served artist radio and its alternatives."""
    row = {k: i for i, k in enumerate(keys)}
    name_of = dict(conn.execute(sa.text("SELECT artist, name FROM artist_vectors")).all())
    queries = [(keys[row[p[0]]], artists[row[p[0]]], set(p[1:])) for p in holdout
               if p[0] in row and artists[row[p[0]]] in name_of]
    targets = [q[2] for q in queries]
    results = {}
    t0 = time.time()
    served = [conn.execute(sa.text("SELECT key FROM radio(artists => :a, n => 50, exact => true)"),
                           {"a": [name_of[a]]}).scalars().all() for _, a, _ in queries]
    results["served: pooled mean + blend + exposure (SQL)"] = metrics(served, targets)
    served_ms = (time.time() - t0) / len(queries) * 1000
    for label, weights in (("pooled mean, song2vec score only", None),
                           ("pooled play-weighted mean, song2vec score only", plays)):
        akeys, avecs, _ = pooled_vectors(list(range(len(keys))), qv, enumerate(artists), weights)
        arow = {a: i for i, a in enumerate(akeys)}
        results[label] = metrics([top_keys(iv @ avecs[arow[a]], keys) for _, a, _ in queries], targets)
    from gensim.models import Word2Vec

    w2v = Word2Vec([s for s in seqs if len(s) >= 2], vector_size=64, window=5, sg=1, negative=10, epochs=10,
                   min_count=1, seed=1, workers=2)
    av = w2v.wv
    unit = av.vectors / np.maximum(np.linalg.norm(av.vectors, axis=1, keepdims=True), 1e-12)
    song_artist = np.array([av.key_to_index.get(a, -1) for a in artists])
    tiebreak = 1e-3 * np.log1p(plays)
    radios = []
    for _, a, _ in queries:
        sims = unit @ unit[av.key_to_index[a]] if a in av.key_to_index else np.zeros(len(unit))
        radios.append(top_keys(np.where(song_artist >= 0, sims[song_artist], -1.0) + tiebreak, keys))
    results["artist-only song2vec (artist cosine, then plays)"] = metrics(radios, targets)
    results["popularity"] = metrics([top_keys(plays, keys)] * len(queries), targets)
    print(f"artist radio: {len(queries)} held-out playlists (seed: the first song's artist; targets: the rest)")
    for label, m in results.items():
        print(f"  {label:<52} recall@50 {m['recall@50']:.4f}  HR@10 {m['HR@10']:.4f}")
    print(f"  served artist radio: {served_ms:.1f} ms a query (exact cube kNN)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--holdout", required=True)
    ap.add_argument("--prefix", default="yes_small")
    ap.add_argument("--max-queries", type=int, default=1000)
    ap.add_argument("--part", choices=("artist", "tag", "both"), default="both")
    ap.add_argument("--bonuses", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0, 2.0],
                    help="tag radio: the score bonuses b tried for songs carrying the asked tag")
    ap.add_argument("--nearest", type=int, nargs="*", default=[10, 25, 50],
                    help="tag radio: also try only the S tag songs nearest the tag vector as co-occurrence sources")
    ap.add_argument("--co-top", type=int, nargs="*", default=[100, 200],
                    help="tag radio: also try only the C heaviest co-occurrence neighbours as candidates")
    ap.add_argument("--other-modes", nargs="*", default=[], choices=("easy", "hard"),
                    help="tag radio: also measure the served radio in these modes")
    args = ap.parse_args()
    print("# " + " ".join(sys.argv))
    eng = sa.create_engine(args.url.replace("postgresql://", "postgresql+psycopg2://"))
    with eng.connect() as conn:
        ids, keys, artists, qv, iv, plays, tags, seqs = load(conn, args.prefix)
        holdout = load_holdout(args.holdout, args.prefix)[: args.max_queries]
        if args.part in ("artist", "both"):
            artist_radio(conn, holdout, keys, artists, qv, iv, plays, seqs)
        if args.part in ("tag", "both"):
            tag_radio(conn, holdout, ids, keys, iv, plays, tags, args.bonuses, args.nearest, args.co_top,
                      ["medium", *args.other_modes])


if __name__ == "__main__":
    main()
