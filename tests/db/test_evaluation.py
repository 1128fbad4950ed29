"""`marconi eval radio`: the metrics themselves on known answers, then the whole run on the held-out split."""

import pytest

from marconi.evaluation.radio import eval_radio, evaluate


def test_metrics_on_recommenders_with_known_answers():
    holdout = [["a", "b", "c", "d", "e", "f"], ["x", "y", "z", "w", "v"]]
    pairs = [("a", "b"), ("b", "c"), ("x", "y")]
    following = {p[i]: p[i + 1] for p in holdout for i in range(len(p) - 1)}

    class Second:  # the true next song always at rank 2, behind a song that opens every list
        name = "second"

        def recommend(self, seeds, k):
            return ["hub", following.get(seeds[-1], "?")] + [f"filler{i}" for i in range(k - 2)]

    class Never:
        name = "never"

        def recommend(self, seeds, k):
            return []

    second, never = Second(), Never()
    r = evaluate(second, pairs, holdout, progress=False)
    assert r["HR@10"] == 1.0 and r["HR@50"] == 1.0 and r["MRR"] == 0.5
    assert r["max_share@10"] == 1.0  # "hub" is in every top 10
    assert r["distinct@10"] == 1 + 3 + 8  # hub, the three next songs, filler0..7
    # radios: seeds are the first three songs; only the 4th is recommended, of 3 (resp. 2) targets
    assert r["radios"] == 2 and r["recall@50"] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=1e-4)  # rounded to 4 places

    tags = {"a": frozenset({1, 2}), "b": frozenset({2}), "x": frozenset({3}), "hub": frozenset({1, 2, 3, 4})}
    t = evaluate(second, pairs, holdout, progress=False, tags=tags)
    # seed a: hub 2/4, b 1/2; seed b: hub 1/4 (c has no tags); seed x: hub 1/4 (y has no tags)
    assert t["tag_jaccard@10"] == pytest.approx((0.5 + 0.5 + 0.25 + 0.25) / 4, abs=1e-4)
    assert r["tag_jaccard@10"] is None  # no tags given

    z = evaluate(never, pairs, holdout, progress=False)
    assert z["HR@10"] == z["MRR"] == z["recall@50"] == z["distinct@10"] == z["max_share@10"] == 0


def test_eval_radio_on_the_held_out_split(trained_engine, trained_url):
    holdout = trained_url[1] / "holdout.txt"
    assert (trained_url[1] / "tags.txt").is_file()  # the split copies the Last.fm tags beside the holdout
    rows = {r["recommender"]: r for r in eval_radio(trained_engine, holdout, max_queries=400, progress=False,
                                                     varieties=(0.0, 0.75))}
    assert set(rows) == {"popularity", "co-occurrence ±5", "marconi (served)", "marconi variety 0.75"}
    pop, served, varied = rows["popularity"], rows["marconi (served)"], rows["marconi variety 0.75"]
    assert all(r["queries"] == 400 for r in rows.values())
    assert pop["max_share@10"] > 0.9 and pop["distinct@10"] <= 20  # the same ten hits for everyone
    assert served["HR@50"] > pop["HR@50"] and served["recall@50"] > pop["recall@50"]
    assert varied["distinct@10"] > served["distinct@10"] and varied["max_share@10"] < served["max_share@10"]
    # radios share more tags with their seed than the same ten hits for everyone do
    assert served["tag_jaccard@10"] > pop["tag_jaccard@10"] and varied["tag_jaccard@10"] > pop["tag_jaccard@10"]
