"""Artist and tag radio, offline: which artist vector to serve, and does tag radio beat popularity within the tag?

On the held-out playlists of a split (``marconi eval split``; the database holds its training part and a trained
song model), for every held-out playlist:

* artist radio: the seed is the artist of the playlist's first song (one the model knows); the targets are the
  playlist's other songs. recall@50 (share of the targets in the 50-song radio) and HR@10 (a target in the top 10);
* tag radio: the seed is the tag most of the playlist's songs carry (ties: the rarer tag); the targets are the
  playlist's songs. recall@50, HR@10 and tag precision@50 (share of the radio carrying the tag).

Artist methods: the served radio (pooled mean vectors through SQL radio(artists => ...), blend and exposure
included), pooled vectors scored by song2vec alone (plain and play-weighted mean, numpy), an artist-only song2vec
(playlists as sequences of artists; songs ranked by their artist's cosine to the seed, then plays), and popularity.
Tag methods: the served radio(tags => ...), and the most played songs carrying the tag.

    .venv/bin/python bench/eval_artist_radio.py --url postgresql://... \
        --holdout $MARCONI_HOME/datasets/yes_small/holdout.txt
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

import numpy as np
import sqlalchemy as sa

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--holdout", required=True)
    ap.add_argument("--prefix", default="yes_small")
    ap.add_argument("--max-queries", type=int, default=1000)
    args = ap.parse_args()
    eng = sa.create_engine(args.url.replace("postgresql://", "postgresql+psycopg2://"))
    with eng.connect() as conn:
        ids, keys, artists, qv, iv, plays, tags, seqs = load(conn, args.prefix)
        holdout = load_holdout(args.holdout, args.prefix)[: args.max_queries]
        row = {k: i for i, k in enumerate(keys)}
        name_of = dict(conn.execute(sa.text("SELECT artist, name FROM artist_vectors")).all())

        # ---------------------------------------------------------------------------------------- artist radio
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

        # ------------------------------------------------------------------------------------------- tag radio
        tag_songs = Counter(t for ts in tags.values() for t in ts)
        tqueries = []
        for p in holdout:
            counts = Counter(t for k in p for t in tags.get(k, ()))
            if counts:
                tag = min(counts, key=lambda t: (-counts[t], tag_songs[t], t))
                tqueries.append((tag, set(p)))
        ttargets = [q[1] for q in tqueries]
        served = [conn.execute(sa.text("SELECT key FROM radio(tags => :t, n => 50, exact => true)"),
                               {"t": [t]}).scalars().all() for t, _ in tqueries]
        in_tag = {t: np.array([t in tags.get(k, ()) for k in keys]) for t in {q[0] for q in tqueries}}
        popular = [top_keys(np.where(in_tag[t], plays, -1.0), keys) for t, _ in tqueries]

        def precision(radios):
            return float(np.mean([np.mean([t in tags.get(k, ()) for k in r[:50]]) for r, (t, _) in
                                  zip(radios, tqueries, strict=True)]))

        print(f"tag radio: {len(tqueries)} held-out playlists (seed: the tag most of its songs carry)")
        for label, radios in (("served: pooled tag vector (SQL)", served), ("popularity within the tag", popular)):
            m = metrics(radios, ttargets)
            print(f"  {label:<52} recall@50 {m['recall@50']:.4f}  HR@10 {m['HR@10']:.4f}  "
                  f"tag precision@50 {precision(radios):.3f}")


if __name__ == "__main__":
    main()
