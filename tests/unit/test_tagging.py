"""Image → words, without a model or a database: top classes, tags, and the text-eval measures."""

from dataclasses import dataclass

import numpy as np
import pytest

from marconi.evaluation.text_images import average_precision, query_of
from marconi.image_search.tagging import class_rows, tag_rows, tags_for, top_classes


@dataclass(frozen=True)
class Entry:
    names: tuple
    broader: tuple

    def broader_words(self, max_depth=None, first_only=False):
        return self.broader[:max_depth]


VOCAB = [Entry(("Dalmatian", "coach dog"), ("dog", "canine", "animal", "organism")),
         Entry(("beagle",), ("dog", "hound", "animal")),
         Entry(("moped",), ("motorcycle", "motor vehicle", "vehicle")),
         Entry(("teapot",), ("pot", "vessel", "container"))]


def test_top_classes_are_sorted_and_capped():
    probs = np.array([[0.1, 0.6, 0.05, 0.25], [0.7, 0.1, 0.15, 0.05]])
    idx, p = top_classes(probs, k=3)
    assert idx.tolist() == [[1, 3, 0], [0, 2, 1]]
    assert np.allclose(p, [[0.6, 0.25, 0.1], [0.7, 0.15, 0.1]])
    assert top_classes(probs, k=10)[0].shape == (2, 4)


def test_tags_sum_the_probability_of_classes_sharing_a_word():
    tags = {t: (s, d) for t, s, d in tags_for([0, 1, 3], [0.5, 0.3, 0.2], VOCAB)}
    assert tags["dog"] == (pytest.approx(0.8), False)  # a dalmatian or a beagle: a dog either way
    assert tags["dalmatian"] == (pytest.approx(0.5), True) and tags["coach dog"][1] is True
    assert "organism" not in tags  # beyond the nearest three hypernyms
    assert tags["teapot"][0] == pytest.approx(0.2)
    assert all(s >= 0.01 for _, s, _ in tags_for([0, 3], [0.995, 0.005], VOCAB))  # negligible classes give no tags


def test_tags_are_shown_specific_first_and_other_names_last():
    """Shown order: score / breadth ** 0.5. "dog" (0.8, two classes) comes before "dalmatian" (0.5, one), but a
    dalmatian at 0.7 comes before "dog" at 0.8; a class's other names ("coach dog") come after every other tag."""
    ranked = [t for t, _, _ in tags_for([0, 1, 3], [0.5, 0.3, 0.2], VOCAB)]
    assert ranked[:2] == ["animal", "dog"]  # 0.8 / 2 ** 0.5 each: ties are alphabetical
    assert ranked[2:4] == ["dalmatian", "canine"]  # 0.5 / 1 each: the class name first
    assert ranked[-1] == "coach dog" and ranked.index("teapot") < ranked.index("coach dog")
    ranked = [t for t, _, _ in tags_for([0, 1], [0.7, 0.1], VOCAB)]
    assert ranked.index("dalmatian") < ranked.index("dog")  # 0.7 against 0.8 / 2 ** 0.5
    by_score = [t for t, _, _ in sorted(tags_for([0, 1], [0.7, 0.1], VOCAB), key=lambda t: -t[1])]
    assert by_score.index("dog") < by_score.index("dalmatian")  # the scores themselves are unchanged


def test_broader_words_outside_everyday_english_come_last():
    ranked = [t for t, _, _ in tags_for([0, 1, 3], [0.5, 0.3, 0.2], VOCAB, common={"dog", "animal", "pot"})]
    assert ranked[:4] == ["animal", "dog", "dalmatian", "beagle"]  # canine and hound are not everyday words here
    assert ranked[-4:] == ["canine", "hound", "container", "vessel"]  # after the other names, by score / breadth
    assert ranked.index("coach dog") < ranked.index("canine") and "teapot" in ranked[:6]  # class names never move


def test_word_breadth_counts_the_classes_under_a_word():
    from marconi.image_search.tagging import word_breadth

    breadth = word_breadth(VOCAB)
    assert breadth["dog"] == 2 and breadth["animal"] == 2 and breadth["canine"] == 1 and breadth["vessel"] == 1
    assert word_breadth(VOCAB) is breadth  # computed once per vocabulary


def test_rows_for_the_run_tables():
    idx, p = top_classes(np.array([[0.9, 0.1, 0.0, 0.0]]), k=2)
    scores = np.array([[0.8, 0.5]])
    assert list(class_rows([42], 7, idx, p, scores)) == [(42, 7, 0, pytest.approx(0.9), pytest.approx(0.8)),
                                                         (42, 7, 1, pytest.approx(0.1), pytest.approx(0.5))]
    rows = list(tag_rows([42], 7, idx, p, VOCAB))
    assert rows[0][:3] == (42, 7, "dalmatian") and all(r[1] == 7 for r in rows)  # 0.9: specific and likely
    assert [r[5] for r in rows] == list(range(1, len(rows) + 1))  # rank: the order shown
    assert {r[2] for r in rows} >= {"dalmatian", "coach dog", "dog", "beagle"}


def test_text_eval_measures():
    assert query_of("Faces_easy") == "faces easy" and query_of("car-side") == "car side"
    assert average_precision([True, False, True], 2) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, False], 3) == 0 and average_precision([True], 0) == 0
    assert average_precision([True, False], 4) == pytest.approx(0.25)  # relevant items never retrieved count


def test_tags_carry_one_name_per_broader_word(monkeypatch):
    """A moped is under "minibike, motorbike": its tags carry the first name (synonyms of one broader word would
    crowd an image's best tags), both when BROADER_ALL_NAMES is set."""
    from marconi.errors import Unavailable
    from marconi.image_search import tagging
    from marconi.text.vocabulary import imagenet_classes

    try:
        moped = next(c for c in imagenet_classes() if c.name == "moped")
    except Unavailable as exc:  # the class files or WordNet are not installed here
        pytest.skip(str(exc))
    words = dict(tagging.tag_words(moped))
    assert words["moped"] is True and words["minibike"] is False and "motorbike" not in words
    monkeypatch.setattr(tagging, "BROADER_ALL_NAMES", True)
    assert dict(tagging.tag_words(moped))["motorbike"] is False
