"""The pure radio steps and the baseline recommenders, without a database."""

import numpy as np
import pytest
import scipy.sparse as sp

from marconi.api.params import validate
from marconi.errors import BadRequest
from marconi.recommenders.cooccurrence import Cooccurrence
from marconi.recommenders.counts import PlaylistCounts
from marconi.recommenders.exposure import exposure_offsets
from marconi.recommenders.neighbours import cooccurrence_counts, top_neighbours
from marconi.recommenders.popularity import Popularity
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.steps import (
    NeedsRetraining,
    UnknownSeeds,
    model_run_of,
    playlist_items,
    split_seeds,
    spotify_url,
)


def test_request_accepts_valid_body_and_dedupes_seeds():
    req = validate(RadioRequest, {"seeds": ["a:1", " a:1 ", "a:2"], "size": 10, "max_per_artist": 2})
    assert req.seeds == ("a:1", "a:2")
    assert req.size == 10 and req.max_per_artist == 2 and req.variety == 0.0
    assert validate(RadioRequest, {"seeds": ["a"], "variety": 1}).variety == 1.0
    assert validate(RadioRequest, {"seeds": ["a"], "variety": 5e-324}).variety == 0.0  # no denormals for SQL


def test_request_takes_songs_and_artists_to_exclude():
    req = validate(RadioRequest, {"seeds": ["a:1"], "exclude": ["a:2", " Beyonce ", "a:2"]})
    assert req.exclude == ("a:2", "Beyonce")
    assert validate(RadioRequest, {"seeds": ["a:1"]}).exclude == ()
    for bad in ("a:2", [""], [3], ["x"] * 201):
        with pytest.raises(BadRequest, match="exclude"):
            validate(RadioRequest, {"seeds": ["a:1"], "exclude": bad})


@pytest.mark.parametrize("body, fragment", [
    ({}, "seeds"),
    ({"seeds": []}, "seeds"),
    ({"seeds": "a:1"}, "seeds"),
    ({"seeds": [1, 2]}, "seeds"),
    ({"seeds": [""]}, "seeds"),
    ({"seeds": ["a"], "size": 0}, "size"),
    ({"seeds": ["a"], "size": 201}, "size"),
    ({"seeds": ["a"], "size": "10"}, "size"),
    ({"seeds": ["a"], "size": True}, "size"),
    ({"seeds": ["a"], "max_per_artist": 0}, "max_per_artist"),
    ({"seeds": ["a"], "max_per_artist": 2**31}, "max_per_artist"),
    ({"seeds": ["a"], "colour": "red"}, "colour"),
    ({"seeds": ["s"] * 51}, "seeds"),
    ({"seeds": ["a"], "variety": -0.1}, "variety"),
    ({"seeds": ["a"], "variety": 1.5}, "variety"),
    ({"seeds": ["a"], "variety": "0.5"}, "variety"),
    ({"seeds": ["a"], "variety": True}, "variety"),
    ({"seeds": ["a\x00b"]}, "NUL"),
])
def test_request_rejects_bad_bodies_naming_the_field(body, fragment):
    with pytest.raises(BadRequest) as exc:
        validate(RadioRequest, body)
    assert fragment in str(exc.value)
    assert exc.value.status == 400


def _seed(key, title="t", run_id=7):
    return {"key": key, "title": title, "artist": "a", "run_id": run_id}


def test_split_seeds_ignores_unknown_and_rare_seeds_while_one_is_known():
    known, ignored = split_seeds([_seed("a"), _seed("rare", run_id=None), _seed("b")])
    assert [s["key"] for s in known] == ["a", "b"] and ignored == ["rare"]
    # a shared link whose song left the catalogue still plays, and says which seed it ignored
    known, ignored = split_seeds([_seed("a"), _seed("gone", title=None, run_id=None)])
    assert [s["key"] for s in known] == ["a"] and ignored == ["gone"]
    with pytest.raises(UnknownSeeds) as exc:
        split_seeds([_seed("x", title=None, run_id=None), _seed("y", title=None, run_id=None)])
    assert exc.value.status == 404 and exc.value.details["unknown"] == ["x", "y"]
    with pytest.raises(UnknownSeeds, match="none of the seeds"):
        split_seeds([_seed("rare", run_id=None)])


def test_playlist_items_add_links_and_refuse_variety_without_hub_scores():
    rows = [{"key": "spotify:track:abc", "title": "t", "artist": "a", "distance": 1.23456789, "score": 0.5,
             "run_id": 3}, {"key": "yes_small:1", "title": "u", "artist": "b", "distance": 2.0, "score": 0.4,
                            "run_id": 3}]
    items = playlist_items([dict(r, reason="close to Halo") for r in rows], 0.0)
    assert items[0]["reason"] == "close to Halo"
    assert items[0]["spotify_url"] == "https://open.spotify.com/track/abc" and items[1]["spotify_url"] is None
    assert items[0]["distance"] == 1.234568 and "run_id" not in items[0]
    unscored = [dict(r, score=None) for r in rows]
    assert len(playlist_items(unscored, 0.0)) == 2  # without variety the scores are not needed
    with pytest.raises(NeedsRetraining) as exc:
        playlist_items(unscored, 0.5)
    assert exc.value.status == 409 and "marconi train songs" in str(exc.value)


def test_an_answer_names_exactly_one_model_run():
    assert model_run_of([_seed("a", run_id=4)], [{"run_id": 4}, {"run_id": 4}]) == 4
    assert model_run_of([_seed("a", run_id=4)], []) == 4
    with pytest.raises(AssertionError, match="mixed"):
        model_run_of([_seed("a", run_id=4)], [{"run_id": 5}])


def test_spotify_url_only_for_spotify_keys():
    assert spotify_url("spotify:track:abc") == "https://open.spotify.com/track/abc"
    assert spotify_url("yes_small:1") is None


PLAYLISTS = [["a", "b", "c", "d"], ["a", "b", "e"], ["b", "c"], ["x", "y", "b"], ["b"]]


def test_counts_plays_and_windowed_cooccurrence():
    counts = PlaylistCounts.from_playlists(PLAYLISTS, window=1)
    pop = dict(zip(counts.keys, counts.popularity, strict=True))
    assert pop == {"a": 2, "b": 5, "c": 2, "d": 1, "e": 1, "x": 1, "y": 1}
    i = counts.index
    assert counts.cooc[i["a"], i["b"]] == 2 and counts.cooc[i["b"], i["c"]] == 2
    assert counts.cooc[i["a"], i["c"]] == 0  # two apart: outside a window of 1
    assert counts.cooc[i["y"], i["b"]] == counts.cooc[i["b"], i["y"]] == 1


def test_popularity_and_cooccurrence_baselines():
    counts = PlaylistCounts.from_playlists(PLAYLISTS, window=1)
    assert Popularity(counts).recommend(["z"], 2) == ["b", "a"]  # b most played; a before c (first seen)
    assert Popularity(counts).recommend(["b"], 2) == ["a", "c"]  # seeds are left out
    cooc = Cooccurrence(counts)
    assert cooc.recommend(["a"], 1) == ["b"]
    assert cooc.recommend(["d"], 2) == ["c", "b"]  # c is d's only neighbour; then popularity fills in
    assert cooc.recommend(["unknown"], 2) == ["b", "a"]  # unknown seeds: popularity
    assert "b" not in cooc.recommend(["b", "a"], 5)


def test_vectorised_neighbour_counts_equal_the_baseline_counts():
    rng = np.random.default_rng(0)
    playlists = [list(rng.integers(0, 30, size=rng.integers(1, 15))) for _ in range(200)]
    fast = cooccurrence_counts(playlists, 30, chunk_pairs=50).toarray()  # many chunks
    slow = PlaylistCounts.from_playlists([[str(x) for x in p] for p in playlists], window=5)
    order = [int(k) for k in slow.keys]
    reference = np.zeros((30, 30))
    reference[np.ix_(order, order)] = slow.cooc.toarray()
    assert np.array_equal(fast, reference)
    directed = cooccurrence_counts([[0, 1, 2]], 3, after=(1.0, 0.5), before=(0.0, 0.0)).toarray()
    assert directed[0, 1] == 1.0 and directed[0, 2] == 0.5 and directed[1, 0] == 0.0


def test_top_neighbours_keep_the_n_most_frequent_normalised_by_the_song_total():
    counts = sp.csr_matrix(np.array([[5, 3, 1, 1], [3, 0, 0, 2], [1, 0, 0, 0], [1, 2, 0, 0]], dtype=np.float32))
    src, dst, w = top_neighbours(counts, 2)
    rows = {(int(a), int(b)): float(x) for a, b, x in zip(src, dst, w, strict=True)}
    assert rows[(0, 1)] == pytest.approx(3 / 5) and rows[(0, 2)] == pytest.approx(1 / 5)  # tie: lower index
    assert (0, 0) not in rows and (0, 3) not in rows  # the song itself never counts
    assert rows[(2, 0)] == 1.0 and sum(1 for a, _ in rows if a == 1) == 2


def test_exposure_offsets_bring_a_hub_under_the_cap_and_leave_the_rest_alone():
    rng = np.random.default_rng(1)
    n, queries = 60, 60
    scores = rng.normal(size=(queries, n))
    scores[:, 7] += 3.0  # song 7 tops every query
    scores[np.arange(queries), np.arange(queries)] = -np.inf  # a seed never recommends itself
    cand = np.argsort(-scores, axis=1)[:, :30]
    top_scores = np.take_along_axis(scores, cand, axis=1)
    weights = np.ones(queries)
    offsets = exposure_offsets(cand, top_scores, weights, n, cap=0.2, k=5)
    adjusted = top_scores - offsets[cand]
    tops = np.take_along_axis(cand, np.argsort(-adjusted, axis=1)[:, :5], axis=1)
    share = np.bincount(tops.ravel(), minlength=n) / queries
    assert share[7] <= 0.2 + 1e-9 and share.max() <= 0.2 + 1e-9
    assert offsets[7] > 0 and offsets.min() == 0.0
    # song 7 stays where it scores best
    kept = [q for q in range(queries) if 7 in tops[q]]
    assert min(scores[kept, 7]) >= np.median(scores[:, 7])
