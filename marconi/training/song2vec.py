"""song2vec: playlists read from Postgres → gensim Word2Vec → song vectors swapped into song_vectors.

Playlists are sentences and tracks are words. Two scorings are supported:

* ``ip`` (default): a radio query is the sum of the seeds' unit *input* vectors, and candidates are scored by the
  inner product with their *output* vectors, which is what word2vec's negative sampling fits to co-occurrence. The
  stored item side gets one extra coordinate sqrt(M^2 - |v|^2) so the cube's Euclidean nearest neighbour of a query
  (0 in that coordinate) is its maximum inner product.
* ``cosine``: the original marconi: unit input vectors on both sides, Euclidean on unit vectors = cosine.

Radio v2 (migration 0010) adds two things a run stores beside its vectors, both measured in docs/evaluation.md:

* ``song_neighbours``: each song's ``neighbours`` most co-occurring songs (±5 positions, weighted 1/distance,
  normalised by the song's total), which radio() blends in with weight ``blend``;
* ``song_vectors.exposure``: the offsets that keep any song under ``exposure_cap`` of all one-seed radios
  (marconi.recommenders.exposure).

Artist and tag radio (migration 0011) adds ``artist_vectors`` and ``tag_vectors``: the unit mean of each artist's
(tag's) songs' unit input vectors (marconi.recommenders.pooled), staged and swapped with the run.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import sqlalchemy as sa

from marconi import runs
from marconi.config import Config
from marconi.db import artists as artists_db
from marconi.db import playlists as playlists_db
from marconi.db import tags as tags_db
from marconi.db.cube import CUBE_MAX_DIM, to_cube, to_vector
from marconi.progress import progress as progress_bar
from marconi.recommenders.exposure import calibration_candidates, exposure_offsets
from marconi.recommenders.neighbours import cooccurrence_counts, top_neighbours
from marconi.recommenders.pooled import pooled_vectors

log = logging.getLogger(__name__)


@dataclass
class SongParams:
    """Training parameters; each one is a `marconi train songs` option."""

    vector_size: int = 64
    window: int = 5
    sg: int = 1
    negative: int = 10
    ns_exponent: float = 0.0
    sample: float = 0.0
    epochs: int = 40  # with blend 0.1 and exposure_cap 0.07: the radio default since 2026-12-05 (docs/evaluation.md)
    min_count: int = 2
    alpha: float = 0.025
    max_playlist_length: int = 200
    min_playlist_length: int = 2
    max_artist_share: float = 0.5
    scoring: str = "ip"
    blend: float = 0.1
    neighbours: int = 100
    exposure_cap: float = 0.07
    seed: int = 1
    workers: int = 2

    def validate(self) -> None:
        """Raise ValueError for parameters that cannot work (e.g. too many dimensions for cube)."""
        limit = CUBE_MAX_DIM - 1 if self.scoring == "ip" else CUBE_MAX_DIM
        if not 2 <= self.vector_size <= limit:
            raise ValueError(f"vector_size must be 2..{limit} for scoring={self.scoring} (cube holds {CUBE_MAX_DIM})")
        if self.scoring not in ("ip", "cosine"):
            raise ValueError("scoring must be 'ip' or 'cosine'")
        if not 0 < self.max_artist_share <= 1:
            raise ValueError("max_artist_share must be in (0, 1]")
        if not 0 <= self.blend <= 10:
            raise ValueError("blend must be in [0, 10]")
        if not 1 <= self.neighbours <= 1000:
            raise ValueError("neighbours must be 1..1000")
        if not 0 <= self.exposure_cap <= 1:
            raise ValueError("exposure_cap must be in [0, 1] (0: no cap)")


def filter_playlist(ids: list[int], artists: list[str], p: SongParams) -> bool:
    """True when a playlist is kept for training: length within limits and no artist over max_artist_share."""
    if not p.min_playlist_length <= len(ids) <= p.max_playlist_length:
        return False
    named = [a for a in artists if a]
    if len(named) >= 2:
        top = Counter(named).most_common(1)[0][1]
        if top / len(ids) > p.max_artist_share:
            return False
    return True


NEIGHBOUR_WEIGHTS = tuple(1.0 / d for d in range(1, 6))  # ±5 positions, a song next door counts most
CALIBRATION_QUERIES = 5000


def sentences(conn: sa.Connection, p: SongParams) -> tuple[list[list[str]], dict[str, int]]:
    """Return the kept playlists as lists of track-id strings and counts of kept/dropped playlists."""
    kept: list[list[str]] = []
    stats = Counter()
    for ids, artists in playlists_db.playlist_sequences(conn):
        if filter_playlist(ids, artists, p):
            kept.append([str(i) for i in ids])
            stats["kept"] += 1
        else:
            stats["dropped"] += 1
    return kept, dict(stats)


class _EpochBar:
    """gensim callback that advances a progress bar (log lines off a terminal) per epoch."""

    def __init__(self, epochs: int, enabled: bool):
        self.bar = progress_bar(total=epochs, unit="epoch", desc="training song2vec", enabled=enabled)

    def on_epoch_begin(self, model):  # noqa: D401 - gensim callback protocol
        pass

    def on_epoch_end(self, model):
        self.bar.update(1)

    def on_train_begin(self, model):
        pass

    def on_train_end(self, model):
        self.bar.close()


def fit(sents: list[list[str]], p: SongParams, progress: bool = True):
    """Train gensim Word2Vec on ``sents``; return the model."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    class Bar(_EpochBar, CallbackAny2Vec):
        pass

    return Word2Vec(
        sentences=sents, vector_size=p.vector_size, window=p.window, sg=p.sg, negative=p.negative,
        ns_exponent=p.ns_exponent, sample=p.sample, epochs=p.epochs, min_count=p.min_count, alpha=p.alpha,
        seed=p.seed, workers=p.workers, hs=0, callbacks=[Bar(p.epochs, progress)],
    )


def item_vectors(model, scoring: str) -> tuple[list[int], np.ndarray, np.ndarray, float]:
    """Return (track ids, query-side unit vectors, item-side vectors, item norm M) from a trained model."""
    ids = [int(k) for k in model.wv.index_to_key]
    inp = model.wv.vectors.astype(np.float64)
    q = inp / np.maximum(np.linalg.norm(inp, axis=1, keepdims=True), 1e-12)
    if scoring == "cosine":
        return ids, q, q.copy(), 1.0
    out = model.syn1neg.astype(np.float64)
    norms = np.linalg.norm(out, axis=1)
    m = float(norms.max())
    extra = np.sqrt(np.maximum(m * m - norms * norms, 0.0))
    return ids, q, np.hstack([out, extra[:, None]]), m


def hub_scores(qv: np.ndarray, items: np.ndarray, k: int = 10, max_queries: int = 5000, seed: int = 0,
               block: int = 4096) -> np.ndarray:
    """Each item's mean score over the ``k`` queries that score it highest (its "hubness").

    ``qv`` are unit query vectors (one per song) and ``items`` the item vectors without the extra coordinate, so a
    score is the inner product with a unit query, as a single-seed radio ranks. Catalogues with more than
    ``max_queries`` songs use that many sampled queries. Radios re-rank by ``score - variety * hub`` (CSLS).
    """
    rng = np.random.default_rng(seed)
    queries = qv if len(qv) <= max_queries else qv[rng.choice(len(qv), max_queries, replace=False)]
    k = max(1, min(k, len(queries)))
    out = np.empty(len(items), dtype=np.float64)
    for start in range(0, len(items), block):
        scores = items[start:start + block] @ queries.T
        out[start:start + block] = np.partition(scores, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def vector_rows(run_id: int, ids: list[int], qv: np.ndarray, iv: np.ndarray, hub: np.ndarray,
                hnsw: bool, exposure: np.ndarray | None = None) -> Iterator[list]:
    """Rows for song_vectors: track, run, item cube, query cube, hub score, exposure offset (when given), and the
    pgvector item vector (with ``hnsw``)."""
    hdims = qv.shape[1]  # the item vector without the extra coordinate
    for i, tid in enumerate(ids):
        row = [tid, run_id, to_cube(iv[i]), to_cube(qv[i]), float(hub[i])]
        if exposure is not None:
            row.append(float(exposure[i]))
        yield row + [to_vector(iv[i][:hdims])] if hnsw else row


def radio_extras(sents: list[list[str]], ids: list[int], qv: np.ndarray, out: np.ndarray,
                 p: SongParams) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """What radio v2 stores beside the vectors: (song, neighbour, weight) rows as track ids, and exposure offsets.

    Neighbours are counted on the same playlists the model trained on, among the songs it kept. The offsets are
    calibrated on one-seed radios of every song (a sample of 5,000 in bigger catalogues), weighted by plays.
    """
    row_of = {str(tid): i for i, tid in enumerate(ids)}  # the model's songs first, then the songs it dropped
    for s in sents:
        for x in s:
            row_of.setdefault(x, len(row_of))
    seqs = [[row_of[x] for x in s] for s in sents]  # positions kept: a dropped song still stands in between
    counts = cooccurrence_counts(seqs, len(row_of), NEIGHBOUR_WEIGHTS)[: len(ids), : len(ids)]
    src, dst, wts = top_neighbours(counts, p.neighbours)
    weights = sp.csr_matrix((wts, (src, dst)), shape=(len(ids), len(ids)))
    ids_arr = np.asarray(ids, dtype=np.int64)
    neighbours = (ids_arr[src], ids_arr[dst], wts)
    if not p.exposure_cap:
        return neighbours, np.zeros(len(ids))
    plays = np.bincount(np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]), minlength=len(row_of))
    rng = np.random.default_rng(p.seed)
    queries = np.arange(len(ids)) if len(ids) <= CALIBRATION_QUERIES else np.sort(
        rng.choice(len(ids), CALIBRATION_QUERIES, replace=False))
    cand, scores = calibration_candidates(qv, out, weights, p.blend, queries)
    return neighbours, exposure_offsets(cand, scores, plays[queries], len(ids), p.exposure_cap)


def artist_rows(conn: sa.Connection, run_id: int, ids: list[int], qv: np.ndarray) -> list[list]:
    """Rows for artist_vectors: folded name, run, the most common spelling, songs in the model, pooled vector."""
    artists = artists_db.artists_of_tracks(conn)
    keys, vecs, counts = pooled_vectors(ids, qv, ((t, a[0]) for t, a in artists.items()))
    spellings: dict[str, Counter] = {}
    for folded, name in artists.values():
        spellings.setdefault(folded, Counter())[name] += 1
    return [[key, run_id, spellings[key].most_common(1)[0][0], int(c), to_cube(v)]
            for key, v, c in zip(keys, vecs, counts, strict=True)]


def tag_rows(conn: sa.Connection, run_id: int, ids: list[int], qv: np.ndarray) -> list[list]:
    """Rows for tag_vectors: tag id, run, songs in the model, pooled vector."""
    keys, vecs, counts = pooled_vectors(ids, qv, tags_db.tags_of_tracks(conn))
    return [[int(key), run_id, int(c), to_cube(v)] for key, v, c in zip(keys, vecs, counts, strict=True)]


def train_songs(engine: sa.Engine, progress: bool = True, config: Config | None = None, **options) -> dict:
    """Train song2vec on the playlists in the database and swap the vectors in; return a summary of the run.

    ``options`` are :class:`SongParams` fields; ``config`` gives the swap settings (the environment's when None).
    """
    p = SongParams(**options)
    p.validate()
    t0 = time.time()
    with engine.connect() as conn:
        sents, stats = sentences(conn, p)
    if not sents:
        raise RuntimeError("no playlists to train on: import some first (`marconi import playlists --help`)")
    log.info("training on %d playlists (%d dropped by the filters)", stats.get("kept", 0), stats.get("dropped", 0))
    dims = p.vector_size + (1 if p.scoring == "ip" else 0)
    with runs.build(engine, "songs", "song2vec", asdict(p), dims, config) as run:
        model = fit(sents, p, progress=progress)
        ids, qv, iv, m = item_vectors(model, p.scoring)
        out = iv[:, : qv.shape[1]]
        t1 = time.time()
        hub = hub_scores(qv, out)
        (src, dst, wts), exposure = radio_extras(sents, ids, qv, out, p)
        log.info("hub scores, %d neighbours and exposure offsets for %d songs in %.1fs", len(src), len(ids),
                 time.time() - t1)
        hnsw = run.has_pgvector()
        cols = ["track_id", "run_id", "vec", "qvec", "hub", "exposure"] + (["hvec"] if hnsw else [])
        n = run.stage(cols, vector_rows(run.id, ids, qv, iv, hub, hnsw, exposure),
                      hnsw_dims=qv.shape[1] if hnsw else None)
        rows = ([run.id, int(a), int(b), float(w)] for a, b, w in zip(src, dst, wts, strict=True))
        run.stage(["run_id", "track_id", "neighbour_id", "weight"], rows, table="song_neighbours")
        with engine.connect() as conn:
            artists, tags = artist_rows(conn, run.id, ids, qv), tag_rows(conn, run.id, ids, qv)
        run.stage(["artist", "run_id", "name", "songs", "qvec"], artists, table="artist_vectors")
        run.stage(["tag_id", "run_id", "songs", "qvec"], tags, table="tag_vectors")
        metrics = {"playlists_kept": stats.get("kept", 0), "playlists_dropped": stats.get("dropped", 0),
                   "vocabulary": len(ids), "item_norm": m, "hub_scores": True,
                   "radio": {"blend": p.blend, "neighbours": len(src), "exposure_cap": p.exposure_cap,
                             "capped_songs": int((exposure > 0).sum()),
                             "artist_vectors": len(artists), "tag_vectors": len(tags)},
                   "train_seconds": round(time.time() - t0, 2)}
        run.publish(n, metrics)
    log.info("model run %d serving: %d song vectors, %d dims, %.1fs", run.id, n, dims, time.time() - t0)
    return {"run_id": run.id, "vectors": n, "dims": dims, **metrics}
