"""The pure radio steps, without a database."""

import numpy as np
import pytest

from marconi import radio


def test_parse_request_accepts_valid_body_and_dedupes_seeds():
    req = radio.parse_request({"seeds": ["a:1", " a:1 ", "a:2"], "size": 10, "max_per_artist": 2})
    assert req.seeds == ("a:1", "a:2")
    assert req.size == 10 and req.max_per_artist == 2


@pytest.mark.parametrize("body, fragment", [
    (None, "JSON object"),
    ([], "JSON object"),
    ({}, "seeds"),
    ({"seeds": []}, "seeds"),
    ({"seeds": "a:1"}, "seeds"),
    ({"seeds": [1, 2]}, "string"),
    ({"seeds": [""]}, "string"),
    ({"seeds": ["a"], "size": 0}, "size"),
    ({"seeds": ["a"], "size": 201}, "size"),
    ({"seeds": ["a"], "size": "10"}, "size"),
    ({"seeds": ["a"], "size": True}, "size"),
    ({"seeds": ["a"], "max_per_artist": 0}, "max_per_artist"),
    ({"seeds": ["a"], "colour": "red"}, "unknown fields"),
    ({"seeds": ["s"] * 51}, "at most"),
    ({"seeds": ["a"], "variety": -0.1}, "variety"),
    ({"seeds": ["a"], "variety": 1.5}, "variety"),
    ({"seeds": ["a"], "variety": "0.5"}, "variety"),
    ({"seeds": ["a"], "variety": True}, "variety"),
])
def test_parse_request_rejects_bad_bodies(body, fragment):
    with pytest.raises(radio.RadioError) as exc:
        radio.parse_request(body)
    assert fragment in str(exc.value)
    assert exc.value.status == 400


def test_query_vector_sums_and_pad_adds_zero_coordinate():
    q = radio.query_vector([np.array([1.0, 0.0]), np.array([0.0, 1.0])])
    assert np.allclose(q, [1.0, 1.0])
    assert np.allclose(radio.pad(q, 3), [1.0, 1.0, 0.0])


def test_drop_seeds_and_cap_artists_keep_order():
    cands = [{"key": k, "artist": a} for k, a in
             [("s", "X"), ("1", "A"), ("2", "a"), ("3", "B"), ("4", "A "), ("5", "C")]]
    kept = radio.cap_artists(radio.drop_seeds(cands, ["s"]), 1)
    assert [c["key"] for c in kept] == ["1", "3", "5"]
    assert [c["key"] for c in radio.cap_artists(cands, None)] == ["s", "1", "2", "3", "4", "5"]


def test_scores_recover_inner_product_from_augmented_distance():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(50, 4))
    norms = np.linalg.norm(items, axis=1)
    m = norms.max()
    aug = np.hstack([items, np.sqrt(m * m - norms * norms)[:, None]])
    q = rng.normal(size=4)
    qa = radio.pad(q, 5)
    dist = np.linalg.norm(aug - qa, axis=1)
    # nearest by Euclidean distance == largest inner product
    assert np.argmin(dist) == np.argmax(items @ q)
    cands = radio.add_scores([{"distance": float(d)} for d in dist], qa, m)
    assert np.allclose([c["score"] for c in cands], items @ q / np.linalg.norm(q), atol=1e-5)


def test_candidate_count_grows_with_artist_cap():
    plain = radio.candidate_count(radio.RadioRequest(("a",), 25))
    capped = radio.candidate_count(radio.RadioRequest(("a",), 25, 1))
    assert plain >= 26 and capped > plain


def test_variety_is_parsed_and_fetches_more_candidates():
    req = radio.parse_request({"seeds": ["a"], "size": 10, "variety": 0.25})
    assert req.variety == 0.25
    assert radio.parse_request({"seeds": ["a"], "variety": 1}).variety == 1.0
    assert radio.parse_request({"seeds": ["a"]}).variety == 0.0
    plain = radio.candidate_count(radio.RadioRequest(("a",), 10))
    assert radio.candidate_count(req) >= radio.VARIETY_CANDIDATES > plain


def test_variety_demotes_hubs_and_keeps_the_rest_in_order():
    cands = [{"key": "hub", "score": 0.9, "hub": 1.0}, {"key": "b", "score": 0.8, "hub": 0.2},
             {"key": "c", "score": 0.7, "hub": 0.1}, {"key": "d", "score": 0.3, "hub": 0.1}]
    same = radio.apply_variety([dict(c) for c in cands], 0.0)
    assert [c["key"] for c in same] == ["hub", "b", "c", "d"]
    mixed = radio.apply_variety([dict(c) for c in cands], 0.5)
    assert [c["key"] for c in mixed] == ["b", "c", "hub", "d"]  # 0.7, 0.65, 0.4, 0.25
    assert [c["score"] for c in mixed] == sorted((c["score"] for c in mixed), reverse=True)
    assert mixed[0]["score"] == pytest.approx(0.8 - 0.5 * 0.2)
    with pytest.raises(radio.NeedsRetraining) as exc:
        radio.apply_variety([{"key": "x", "score": 1.0, "hub": None}], 0.5)
    assert exc.value.status == 409 and "marconi train songs" in str(exc.value)


def test_spotify_url_only_for_spotify_keys():
    assert radio.spotify_url("spotify:track:abc") == "https://open.spotify.com/track/abc"
    assert radio.spotify_url("yes_small:1") is None
