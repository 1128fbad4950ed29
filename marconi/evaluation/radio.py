"""Offline evaluation of radio quality on held-out playlists, against popularity and co-occurrence baselines.

Metrics (all through the served path for Marconi: the SQL function radio(), as the API asks it):

* next-song HR@10, HR@50 and MRR (cut at 50): seed = the current song, target = the song that follows it;
* radio recall@50: seeds = the first 3 songs of a held-out playlist, targets = the rest of it.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from marconi.db import playlists as playlists_db
from marconi.db import tracks as tracks_db
from marconi.importers import ImportFormatError
from marconi.importers.playlists import read_yes_playlists
from marconi.progress import progress as progress_bar
from marconi.recommenders import Recommender
from marconi.recommenders.cooccurrence import Cooccurrence
from marconi.recommenders.counts import PlaylistCounts
from marconi.recommenders.popularity import Popularity
from marconi.recommenders.song2vec import Song2VecRadio

log = logging.getLogger(__name__)

def split_yes(directory: Path, out: Path, fraction: float = 0.1, min_length: int = 5, seed: int = 42) -> dict:
    """Split a yes.com train.txt into OUT/train.txt and OUT/holdout.txt (random playlists with ≥ min_length songs).

    song_hash.txt (and the Last.fm tags files, when present) are copied beside them so OUT can be imported and
    evaluated as a data set of its own.
    """
    directory, out = Path(directory), Path(out)
    src = directory / "train.txt"
    if not src.is_file() or not (directory / "song_hash.txt").is_file():
        raise ImportFormatError(directory, None, "not a yes.com directory (needs train.txt and song_hash.txt)")
    lines = src.read_text(encoding="utf-8").splitlines()
    header, body = lines[:2], lines[2:]
    rng = random.Random(seed)
    eligible = [i for i, line in enumerate(body) if len(line.split()) >= min_length]
    held = set(rng.sample(eligible, int(round(len(eligible) * fraction))))
    out.mkdir(parents=True, exist_ok=True)
    tmp_train, tmp_hold = out / "train.txt.tmp", out / "holdout.txt.tmp"
    tmp_train.write_text("\n".join(header + [b for i, b in enumerate(body) if i not in held]) + "\n", encoding="utf-8")
    tmp_hold.write_text("\n".join(header + [b for i, b in enumerate(body) if i in held]) + "\n", encoding="utf-8")
    shutil.copyfile(directory / "song_hash.txt", out / "song_hash.txt")
    for extra in ("tags.txt", "tag_hash.txt"):
        if (directory / extra).is_file():
            shutil.copyfile(directory / extra, out / extra)
    tmp_train.replace(out / "train.txt")
    tmp_hold.replace(out / "holdout.txt")
    return {"train": len(body) - len(held), "holdout": len(held), "eligible": len(eligible), "seed": seed}


def load_tags(path: Path, prefix: str) -> dict[str, frozenset[int]]:
    """Read a yes.com tags.txt (line i: the Last.fm tag ids of song i, or '#') into {track key: tag ids}."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            ids = frozenset(int(t) for t in line.split() if t.isdigit())
            if ids:
                out[f"{prefix}:{i}"] = ids
    return out


def load_holdout(path: Path, prefix: str) -> list[list[str]]:
    """Read a yes.com-format holdout file into lists of track keys."""
    return [[f"{prefix}:{i}" for i in songs] for _, songs in read_yes_playlists(Path(path), prefix, 10**9) if songs]


def next_song_queries(holdout: list[list[str]], max_queries: int, seed: int = 7) -> list[tuple[str, str]]:
    """(current song, next song) pairs from the holdout, sampled down to max_queries."""
    pairs = [(p[i - 1], p[i]) for p in holdout for i in range(1, len(p)) if p[i] != p[i - 1]]
    if len(pairs) > max_queries:
        pairs = random.Random(seed).sample(pairs, max_queries)
    return pairs


def evaluate(recommender: Recommender, pairs: list[tuple[str, str]], holdout: list[list[str]],
             progress: bool = True, tags: dict[str, frozenset] | None = None) -> dict:
    """Compute HR@10, HR@50, MRR@50 on next-song pairs and recall@50 of 3-seed radios.

    Two figures say how varied the answers are: ``distinct@10``, how many different songs fill the top 10s of all
    next-song queries, and ``max_share@10``, the share of those top 10s that hold the single most frequent song
    (a song that opens every radio scores near 1). With ``tags`` (track key → tag ids), ``tag_jaccard@10`` says
    how on-topic they stay: the mean Jaccard similarity of the seed's tags and each recommended song's tags, over
    tagged seeds and tagged recommendations.
    """
    rec, name = recommender.recommend, recommender.name
    hr10 = hr50 = mrr = 0.0
    in_top10: Counter = Counter()
    jaccards: list[float] = []
    for cur, nxt in progress_bar(pairs, desc=f"{name}: next song", enabled=progress, leave=False):
        recs = rec([cur], 50)
        in_top10.update(set(recs[:10]))
        if tags and cur in tags:
            jaccards += [len(tags[cur] & tags[r]) / len(tags[cur] | tags[r]) for r in recs[:10] if r in tags]
        if nxt in recs:
            rank = recs.index(nxt) + 1
            hr50 += 1
            hr10 += rank <= 10
            mrr += 1.0 / rank
    radios = [p for p in holdout if len(p) >= 5]
    recall = 0.0
    for p in progress_bar(radios, desc=f"{name}: radio", enabled=progress, leave=False):
        seeds = list(dict.fromkeys(p[:3]))
        targets = set(p[3:]) - set(seeds)
        if targets:
            recall += len(targets & set(rec(seeds, 50))) / len(targets)
    n = max(len(pairs), 1)
    return {"recommender": name, "queries": len(pairs), "HR@10": round(hr10 / n, 4), "HR@50": round(hr50 / n, 4),
            "MRR": round(mrr / n, 4), "radios": len(radios), "recall@50": round(recall / max(len(radios), 1), 4),
            "distinct@10": len(in_top10),
            "max_share@10": round(max(in_top10.values(), default=0) / n, 4),
            "tag_jaccard@10": round(float(np.mean(jaccards)), 4) if jaccards else None}


def eval_radio(engine: sa.Engine, holdout: Path, source: str | None = None, max_queries: int = 5000,
               baselines: bool = True, ann: str = "auto", progress: bool = True,
               varieties: Sequence[float] = (0.0,), tags: Path | None = None,
               data_dir: Path | None = None, ef_search: int = 400) -> list[dict]:
    """Evaluate the serving radio (and the baselines) on a yes.com-format holdout file; return one row each.

    ``tags`` is a yes.com tags.txt for ``tag_jaccard@10``. By default it is the one beside the holdout file, else
    ``data_dir``/playlists/<source>/tags.txt; without either the figure is None.
    """
    holdout = Path(holdout)
    prefix = source or holdout.parent.name
    candidates = [Path(tags)] if tags else [holdout.parent / "tags.txt"] + (
        [Path(data_dir) / "playlists" / prefix / "tags.txt"] if data_dir else [])
    found = next((p for p in candidates if p.is_file()), None)
    song_tags = load_tags(found, prefix) if found else None
    plists = load_holdout(holdout, prefix)
    if not plists:
        raise ImportFormatError(holdout, None, "no playlists in the holdout file")
    pairs = next_song_queries(plists, max_queries)
    results = []
    with engine.connect() as conn:
        if not tracks_db.count_with_prefix(conn, prefix):
            raise ImportFormatError(holdout, None, f"no tracks with keys '{prefix}:…' in the database: import the "
                                    "training part first or pass --source")
        if baselines:
            counts = PlaylistCounts.from_playlists(playlists_db.playlist_keys(conn))
            for baseline in (Popularity(counts), Cooccurrence(counts)):
                results.append(evaluate(baseline, pairs, plists, progress, song_tags))
        for v in varieties:
            results.append(evaluate(Song2VecRadio(conn, ann, v, ef_search), pairs, plists, progress, song_tags))
    return results
