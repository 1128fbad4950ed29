"""Tests for marconi.text: the ImageNet vocabulary, the WordNet reader and the small Parquet reader (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from marconi.errors import Unavailable
from marconi.text import vocabulary, wordnet
from marconi.text.vocabulary import ancestor_matrix, class_texts, imagenet_classes
from marconi.text.wordnet import WordNetNouns, WordNetUnavailable, parse_line

DALMATIAN_LINE = ("02110341 05 n 03 dalmatian 0 coach_dog 0 carriage_dog 0 002 @ 02084071 n 0000 ~ 02110532 n 0000 "
                  "| a large breed having a smooth white coat with black or brown spots; originated in Dalmatia  \n")


def need_wordnet() -> None:
    """Skip unless WordNet's noun database is installed."""
    try:
        wordnet.find_data_noun()
    except WordNetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def classes():
    """Return the ImageNet classes (skipping without WordNet)."""
    need_wordnet()
    return imagenet_classes()


# ------------------------------------------------------------------------------------------------------ wordnet
def test_parse_line():
    synset = parse_line(DALMATIAN_LINE)
    assert synset.wnid == "n02110341"
    assert synset.lemmas == ("dalmatian", "coach dog", "carriage dog")
    assert synset.hypernyms == ("n02084071",)  # '~' (hyponym) pointers are not hypernyms
    assert synset.definition.startswith("a large breed")


def test_parse_line_instance_hypernym_and_examples():
    line = ('09472597 17 n 01 Vesuvius 0 002 @i 09403734 n 0000 #p 08801678 n 0000 | a volcano; "it erupted"  \n')
    synset = parse_line(line)
    assert synset.hypernyms == ("n09403734",)
    assert synset.definition == "a volcano"


@pytest.mark.parametrize("line", ["", "hello world", "0211 05 n 03 dalmatian 0 | x", "02110341 05 n 0z x 0 000 | y"])
def test_parse_line_rejects_garbage(line):
    with pytest.raises(ValueError):
        parse_line(line)


def test_missing_wordnet_says_how_to_install(tmp_path):
    with pytest.raises(WordNetUnavailable, match="apt-get install wordnet-base") as info:
        wordnet.find_data_noun((tmp_path,))
    assert isinstance(info.value, Unavailable) and info.value.status == 503


def test_wordnet_reads_by_offset():
    need_wordnet()
    nouns = WordNetNouns()
    assert nouns.synset("n02084071").lemmas[0] == "dog"
    ancestors = dict(nouns.ancestors("n02110341"))
    assert ancestors["n02084071"] == 1  # dog, one step up
    assert ancestors["n00001740"] == max(ancestors.values())  # entity, at the top
    with pytest.raises(KeyError):
        nouns.synset("n00000001")
    with pytest.raises(KeyError):
        nouns.synset("dog")


# --------------------------------------------------------------------------------------------------- vocabulary
def test_thousand_classes_in_classifier_order(classes):
    assert len(classes) == 1000
    assert [c.index for c in classes] == list(range(1000))
    assert classes[0].name == "tench" and classes[0].wnid == "n01440764"
    assert classes[999].wnid == "n15075141"  # toilet tissue, the last output
    assert len({c.wnid for c in classes}) == 1000


def test_every_class_has_names_and_a_definition(classes):
    assert all(c.names and all(n.strip() for n in c.names) for c in classes)
    assert all(len(c.definition) > 3 for c in classes)
    assert all(c.broader for c in classes)


def test_dalmatian_broader_words(classes):
    dalmatian = next(c for c in classes if c.wnid == "n02110341")
    assert "dalmatian" in [n.lower() for n in dalmatian.names]
    assert dalmatian.broader[0] == "dog"
    assert {"dog", "canine", "carnivore", "mammal", "animal"} <= set(dalmatian.broader)
    assert not {"entity", "physical entity", "object", "whole", "organism"} & set(dalmatian.broader)
    assert "dog" in dalmatian.broader_words(max_depth=1)
    assert "mammal" not in dalmatian.broader_words(max_depth=2)
    assert {"dog", "dalmatian", "coach"} <= dalmatian.words()


def test_hypernyms_nearest_first(classes):
    for c in classes:
        depths = [h.depth for h in c.hypernyms]
        assert depths == sorted(depths)
        assert not set(c.ancestors) & vocabulary.ABSTRACT


def test_class_texts(classes):
    texts = class_texts("definition")
    assert len(texts) == 1000 and texts[0].startswith("tench: freshwater")
    broader = class_texts("broader")
    assert broader[251].startswith("dalmatian, coach dog, carriage dog; dog; canine")
    with pytest.raises(ValueError):
        classes[0].text("poem")


def test_ancestor_matrix(classes):
    wnids, names, matrix = ancestor_matrix()
    assert matrix.shape == (len(wnids), 1000) and len(names) == len(wnids)
    dog = wnids.index("n02084071")
    assert matrix[dog, 251] == 1 and matrix[dog, 0] == 0
    assert 100 < matrix[dog].sum() < 200  # the dog breeds


def test_missing_timm_says_how_to_install(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(vocabulary.ClassFilesUnavailable, match=r"pip install --no-deps timm==1\.0\.31"):
        vocabulary.info_file("imagenet_synsets.txt")


def test_tokens():
    assert vocabulary.tokens("T-shirt, Tinca tinca") == ["t", "shirt", "tinca", "tinca"]


def test_glove_word_list():
    from marconi.text.words import WORDS_FILE, WordVectorsUnavailable, _data_file, read_words

    try:
        path = _data_file(WORDS_FILE)
    except WordVectorsUnavailable as exc:
        pytest.skip(str(exc))
    words = read_words(path)
    assert len(words) == 400_000
    assert words[:4] == ["the", ",", ".", "of"]
    assert len(set(words)) == len(words)
    assert np.isin(["dog", "dalmatian", "motorcycle"], words).all()


def test_base_forms_and_lookup():
    need_wordnet()
    nouns = WordNetNouns()
    assert nouns.base_forms("leopards") == ["leopard"]
    assert nouns.base_forms("mice") == ["mouse"]
    assert nouns.base_forms("Grand  Pianos") == ["grand piano"]
    assert nouns.base_forms("qwxzzyv") == []
    assert "n02128385" in nouns.lookup("leopards")  # the big cat (another sense is its fur)
    assert nouns.lookup("qwxzzyv") == []


# ------------------------------------------------------------------------------------------- query → class weights
@pytest.fixture(scope="module")
def space(classes):
    """Return a WordNet-only class space (no sentence encoder)."""
    from marconi.text.query import ClassSpace

    return ClassSpace(encoder=None)


def test_word_reaches_every_class_under_it(space, classes):
    query = space.query("dogs")
    dalmatian = next(c.index for c in classes if c.wnid == "n02110341")
    dense = query.dense
    assert dense[dalmatian] == 1.0
    breeds = [c.index for c in classes if "n02084071" in c.ancestors]
    assert len(breeds) > 100 and (dense[breeds] == 1.0).all()
    assert dense[0] < 0.1  # tench: a fish, far from dogs


def test_missing_class_reaches_its_neighbours(space, classes):
    query = space.query("emu")  # not an ImageNet class; the ostrich is its nearest relative among them
    assert classes[int(query.classes[0])].name == "ostrich"
    assert query.weights[0] < 1.0 and list(query.weights) == sorted(query.weights, reverse=True)
    assert classes[int(space.query("kangaroo").classes[0])].name == "wallaby"  # a kind of kangaroo: weight 1


def test_unknown_words_reach_nothing(space):
    query = space.query("qwxzzyv the of")
    assert not query.known and query.classes.size == 0
    assert space.score_images(query, np.full((3, 1000), 0.001, dtype=np.float32)).tolist() == [0.0, 0.0, 0.0]


def test_images_score_by_their_classes(space, classes):
    query = space.query("leopard")
    probs = np.full((2, 1000), 0.0001, dtype=np.float32)
    leopard = next(c.index for c in classes if c.wnid == "n02128385")
    probs[0, leopard] = 0.9
    probs[1, 0] = 0.9
    scores = space.score_images(query, probs)
    assert scores[0] > scores[1] > 0


class _OneVectorEncoder:
    """A stand-in sentence encoder: every text has the same unit vector, so every class text has cosine 1."""

    dims = 4

    def encode_texts(self, texts):
        return np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (len(texts), 1))


def test_descriptions_lean_on_the_sentence_encoder(classes):
    """A query of three content words or more gets phrase_minilm_weight of the sentence match, a shorter one
    minilm_weight (measured in bench/eval_text_phrases.py)."""
    from marconi.text.query import ClassSpace, ClassSpaceParams

    encoder = _OneVectorEncoder()
    vectors = np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (3, len(classes), 1))
    space = ClassSpace(encoder, vectors, params=ClassSpaceParams(top_classes=0, minilm_weight=1.0,
                                                                 phrase_minilm_weight=16.0))
    short = space.query("zzzz qqqq")  # no WordNet sense: weights are the sentence match alone
    long = space.query("zzzz qqqq xxxx")
    assert short.weights.max() == pytest.approx(1.0) and long.weights.max() == pytest.approx(16.0)
    assert space.query("a zzzz of qqqq").weights.max() == pytest.approx(1.0)  # stop words do not count


# ------------------------------------------------------------------------------------- numbers and the head noun
def test_numbers_said_of_nouns():
    from marconi.text.counts import counted

    def base(word):
        return word[:-1] if word.endswith("s") else word

    assert counted("a vehicle with two wheels", base) == {"wheel": {2}}
    assert counted("a small cart with two or four wheels", base) == {"wheel": {2, 4}}
    assert counted("a spider: 8 legs and a pair of eyes", base) == {"leg": {8}, "eye": {2}}
    assert counted("a dog on a beach", base) == {}


def test_counted_words_lead_and_other_counts_drop(classes):
    """"two wheels" lifts the classes whose definitions (or their near hypernyms') say two wheels above every other
    class, and lowers those that say another number of wheels (a car has four)."""
    from marconi.text.query import ClassSpace, ClassSpaceParams

    plain = ClassSpace(encoder=None, params=ClassSpaceParams(top_classes=0, count_words=False))
    counting = ClassSpace(encoder=None, params=ClassSpaceParams(top_classes=0, count_words=True))
    assert ClassSpaceParams().count_words  # served (docs/evaluation.md)
    index = {c.name: c.index for c in classes}
    before, after = plain.query("a vehicle with two wheels").dense, counting.query("a vehicle with two wheels").dense
    assert after[index["moped"]] > before.max() and after[index["mountain bike"]] > before.max()
    assert after[index["sports car"]] < before[index["sports car"]]
    assert after[index["tricycle"]] < before[index["tricycle"]]  # three wheels
    assert (counting.query("leopard").dense == plain.query("leopard").dense).all()  # no number: unchanged


def test_every_class_under_the_head_noun_is_kept(classes):
    """"dog on a beach" keeps all the dog breeds (the head noun), not only the strongest 50 classes; a head noun
    over too many classes ("animal") adds nothing."""
    from marconi.text.query import ClassSpace, ClassSpaceParams

    space = ClassSpace(encoder=None, params=ClassSpaceParams(top_classes=50, head_classes=150))
    breeds = {c.index for c in classes if "n02084071" in c.ancestors}
    kept = set(space.query("dog on a beach").classes.tolist())
    assert breeds <= kept
    without = ClassSpace(encoder=None, params=ClassSpaceParams(top_classes=50, head_classes=0))
    assert len(without.query("dog on a beach").classes) == 50
    assert len(space.query("animal on a beach").classes) == 50
    assert space.head_senses("grand pianos in a hall") == space.wordnet.lookup("grand piano")
