"""Train song2vec on a synthetic corpus shaped like the Million Playlist Dataset, at a fraction of its size.

The MPD has 1M playlists, 66M track occurrences and 2.26M distinct tracks; playlists hold 5..250 tracks (mean 66).
At ``--scale s`` the corpus has s x 1M playlists whose lengths are log-normal (median 49, mean 66, clipped to
5..250) and whose tracks are drawn independently from a Zipf-Mandelbrot popularity, p(rank r) ~ (r + 400 s)^-1.35
over 4M s ranks: the most popular track in about 0.1% of all slots; at full scale 2.01M distinct tracks, 47% of them
seen once (dropped by min_count 2). The draws carry no co-occurrence structure: this measures cost, not quality.
Playlists longer than the served ``max_playlist_length`` (200) are dropped, as training does.

The corpus is written once per scale as a LineSentence file (one playlist a line) and streamed from disk. Each
training runs in its own process so its peak RSS (VmHWM) is its own:

* ``corpus_file``: gensim ``Word2Vec(corpus_file=...)``, every worker reading its own part of the file;
* ``product``: the served path, ``marconi.training.song2vec.fit`` on the playlists held in RAM as lists of
  strings (what ``sentences()`` builds from the database).

Both use the served parameters (``SongParams()``: 64 dims, skip-gram, window 5, negative 10, ns_exponent 0,
sample 0, min_count 2, 20 epochs, 2 workers) unless ``--epochs`` says fewer (cost per epoch is constant).

Run by hand (results go to docs/scaling.md):
    nice -n 10 .venv/bin/python bench/bench_song2vec_scale.py --scale 0.01 --modes corpus_file product
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from marconi.training.song2vec import SongParams, fit

MPD_PLAYLISTS = 1_000_000
ZIPF_EXPONENT, ZIPF_OFFSET, ZIPF_RANKS = 1.35, 400, 4_000_000  # at full scale; offset and ranks scale with s
LENGTH_MEDIAN, LENGTH_SIGMA, LENGTH_MIN, LENGTH_MAX = 49, 0.82, 5, 250  # log-normal: mean about 66
CHUNK_PLAYLISTS = 50_000


def write_corpus(path: Path, scale: float, max_length: int, seed: int = 1) -> dict:
    """Write the synthetic corpus at ``scale`` to ``path`` (one playlist a line); return its shape."""
    rng = np.random.default_rng(seed)
    ranks = max(1000, int(ZIPF_RANKS * scale))
    weights = (np.arange(1, ranks + 1) + ZIPF_OFFSET * scale) ** -ZIPF_EXPONENT
    cdf = np.cumsum(weights / weights.sum())
    ids = rng.permutation(ranks) + 1  # track ids unrelated to popularity rank
    playlists = int(MPD_PLAYLISTS * scale)
    kept = dropped = slots = generated = 0
    seen = np.zeros(ranks, dtype=bool)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for start in range(0, playlists, CHUNK_PLAYLISTS):
            n = min(CHUNK_PLAYLISTS, playlists - start)
            lengths = np.clip(np.rint(rng.lognormal(np.log(LENGTH_MEDIAN), LENGTH_SIGMA, n)), LENGTH_MIN,
                              LENGTH_MAX).astype(np.int64)
            generated += int(lengths.sum())
            lengths = lengths[lengths <= max_length]
            dropped += n - len(lengths)
            drawn = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), ranks - 1)
            seen[drawn] = True
            words = list(map(str, ids[drawn].tolist()))
            ends = np.cumsum(lengths).tolist()
            f.write("".join(" ".join(words[a:b]) + "\n" for a, b in zip([0, *ends[:-1]], ends, strict=True)))
            kept += len(lengths)
            slots += len(words)
    tmp.rename(path)
    return {"generated_occurrences": generated, "playlists": kept, "dropped_over_max_length": dropped,
            "occurrences": slots,
            "distinct_tracks": int(seen.sum()), "mean_length": round(slots / max(kept, 1), 1),
            "file_mb": round(path.stat().st_size / 2**20)}


def peak_rss_mb() -> int:
    """This process's peak resident memory in MiB: VmHWM, which starts afresh at exec (ru_maxrss may carry the
    parent's peak over)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


class EpochClock:
    """gensim callback recording each epoch's wall seconds."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_epoch_begin(self, model):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, model):
        self.seconds.append(round(time.perf_counter() - self._t0, 1))

    def on_train_begin(self, model):
        pass

    def on_train_end(self, model):
        pass


def head_of(corpus: Path, playlists: int) -> tuple[Path, int]:
    """The first ``playlists`` lines of ``corpus`` as a file of its own (streamed); return it and its words."""
    path = corpus.with_name(f"{corpus.stem}-head-{playlists}.txt")
    words = 0
    with corpus.open() as src, path.open("w") as dst:
        for _, line in zip(range(playlists), src, strict=False):
            dst.write(line)
            words += line.count(" ") + 1
    return path, words


def train(corpus: Path, mode: str, epochs: int, fraction: float = 1.0) -> dict:
    """Train on ``corpus`` in this process; return times, vocabulary size and this process's peak RSS.

    With ``fraction`` < 1 (corpus_file only) the vocabulary and weights are those of the whole corpus, but only the
    first ``fraction`` of its playlists is trained on: the cost per word at full vocabulary, in less time.
    """
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec
    from gensim.models.word2vec import LineSentence

    class Clock(EpochClock, CallbackAny2Vec):
        pass

    p = SongParams(epochs=epochs)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    cpu0 = 0.0
    if mode == "product":
        sents = list(LineSentence(str(corpus)))
        loaded = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        rss_corpus, cpu0 = peak_rss_mb(), usage.ru_utime + usage.ru_stime
        model = fit(sents, p, progress=False)  # the served training call, on the in-RAM playlists
        epoch_s, vocab_s = None, loaded - t0
        trained_words = model.corpus_total_words * epochs
    else:
        clock = Clock()
        model = Word2Vec(vector_size=p.vector_size, window=p.window, sg=p.sg,
                         negative=p.negative, ns_exponent=p.ns_exponent, sample=p.sample, epochs=p.epochs,
                         min_count=p.min_count, alpha=p.alpha, seed=p.seed, workers=p.workers,
                         hs=0)  # the arguments of marconi.training.song2vec.fit
        model.build_vocab(corpus_file=str(corpus))
        vocab_s = time.perf_counter() - t0
        rss_corpus, epoch_s = peak_rss_mb(), clock.seconds
        part, words = (head_of(corpus, int(model.corpus_count * fraction)) if fraction < 1
                       else (corpus, model.corpus_total_words))
        loaded = time.perf_counter()  # the clock for words/s starts here, the head file written
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = usage.ru_utime + usage.ru_stime
        model.train(corpus_file=str(part), total_words=words, epochs=epochs, callbacks=[clock])
        trained_words = words * epochs
    total = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime - cpu0  # CPU seconds of training: what a busy machine does not inflate
    return {"mode": mode, "epochs": epochs, "trained_fraction": fraction, "vocabulary": len(model.wv),
            "seconds": round(total, 1), "build_vocab_s" if mode == "corpus_file" else "load_corpus_s":
            round(vocab_s, 1), "epoch_s": epoch_s,
            "words_per_s": round(trained_words / max(total - (loaded - t0), 1e-9)), "training_cpu_s": round(cpu_s, 1),
            "words_per_cpu_s": round(trained_words / max(cpu_s, 1e-9)),
            "rss_start_mb": rss0, "rss_before_training_mb": rss_corpus, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.01, help="fraction of the MPD (1: 1M playlists)")
    ap.add_argument("--modes", nargs="+", choices=("corpus_file", "product"), default=["corpus_file"])
    ap.add_argument("--epochs", type=int, default=SongParams().epochs)
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="corpus_file: train on this first fraction of the playlists (vocabulary from all of them)")
    ap.add_argument("--workdir", default="/tmp/marconi-song2vec-scale", help="where corpora are kept between runs")
    ap.add_argument("--train-one", metavar="MODE", help=argparse.SUPPRESS)  # the child process that trains
    args = ap.parse_args()

    corpus = Path(args.workdir) / f"mpd-shaped-{args.scale:g}.txt"
    if args.train_one:
        print(json.dumps(train(corpus, args.train_one, args.epochs, args.train_fraction)))
        return
    if args.train_fraction < 1 and "product" in args.modes:
        ap.error("--train-fraction applies to --modes corpus_file only")
    report = {"command": shlex.join(["python", *sys.argv]), "machine": f"{platform.machine()}, {os.cpu_count()} "
              f"cores, {platform.platform()}", "load_average_at_start": os.getloadavg(), "scale": args.scale,
              "params": {**vars(SongParams()), "epochs": args.epochs}}
    shape_file = corpus.with_suffix(".json")
    if not shape_file.exists():
        corpus.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        shape = write_corpus(corpus, args.scale, SongParams().max_playlist_length)
        shape["write_s"] = round(time.perf_counter() - t0, 1)
        shape_file.write_text(json.dumps(shape))
    report["corpus"] = json.loads(shape_file.read_text())
    print(f"corpus: {report['corpus']}", file=sys.stderr, flush=True)
    report["runs"] = []
    for mode in args.modes:
        out = subprocess.run([sys.executable, __file__, "--scale", f"{args.scale:g}", "--epochs", str(args.epochs),
                              "--workdir", args.workdir, "--train-fraction", f"{args.train_fraction:g}",
                              "--train-one", mode],
                             capture_output=True, text=True, check=True)
        report["runs"].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{mode}: {report['runs'][-1]}", file=sys.stderr, flush=True)
    report["load_average_at_end"] = os.getloadavg()  # the machine is shared: read timings with these
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
