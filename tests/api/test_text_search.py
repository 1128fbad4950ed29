"""Words → images, image → tags, over HTTP: ranked from the pixels only (the stored labels are never read)."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from PIL import Image


def _labels(body) -> list[str]:
    return [m["label"] for m in body["matches"]]


@pytest.mark.parametrize("query, label", [("dog", "dalmatian"), ("a vehicle with two wheels", "Motorbikes"),
                                          ("sunflower", "sunflower"), ("a cup of coffee", "cup"),
                                          ("aeroplane", "airplanes"), ("wristwatch", "watch")])
def test_words_find_the_photos_that_show_them(client, images_engine, query, label):
    body = client.get("/api/images/search", query_string={"q": query, "k": 10}).get_json()
    labels = _labels(body)
    assert len(labels) == 10 and labels.count(label) >= 7, (query, labels)
    sims = [m["similarity"] for m in body["matches"]]
    assert sims == sorted(sims, reverse=True) and 0 < sims[-1] <= sims[0] <= 1
    assert body["query"]["text"] == query and body["encoder"] == "minilm"


def test_text_search_ignores_stored_labels(client, images_engine):
    """Relabelling every image changes nothing: the ranking comes from what the pixels show."""
    before = client.get("/api/images/search?q=dog").get_json()
    with images_engine.connect() as conn:
        conn.execute(sa.text("UPDATE images SET label = 'dog'"))  # every image now claims to be a dog
        # same connection pool, different transaction: the API must not see this either way; roll back below
        conn.rollback()
    with images_engine.begin() as conn:
        conn.execute(sa.text("UPDATE images SET description = 'dog dog dog' WHERE label = 'cup'"))
    try:
        after = client.get("/api/images/search?q=dog").get_json()
    finally:
        with images_engine.begin() as conn:
            conn.execute(sa.text("UPDATE images SET description = NULL WHERE label = 'cup'"))
    assert [m["id"] for m in after["matches"]] == [m["id"] for m in before["matches"]]


def test_post_text_answers_like_get(client, images_engine):
    get = client.get("/api/images/search?q=sunflower&k=5").get_json()
    post = client.post("/api/images/search", json={"text": "sunflower", "k": 5}).get_json()
    assert [m["id"] for m in post["matches"]] == [m["id"] for m in get["matches"]]
    assert post["model_run"] == get["model_run"]


@pytest.mark.parametrize("query_string, fragment", [
    ({"q": ""}, "q"), ({"q": "   "}, "words"), ({"q": "x" * 201}, "200"), ({"q": "dog\x00"}, "NUL"),
    ({"q": "dog", "k": 0}, "k"), ({}, "q")])
def test_bad_text_queries_are_400(client, images_engine, query_string, fragment):
    r = client.get("/api/images/search", query_string=query_string)
    assert r.status_code == 400 and fragment in r.get_json()["error"]


def test_post_needs_exactly_one_of_url_and_text(client, images_engine):
    for body in ({"k": 3}, {"text": "dog", "url": "https://example.org/a.jpg"}):
        r = client.post("/api/images/search", json=body)
        assert r.status_code == 400 and "either" in r.get_json()["error"]


def test_unknown_words_answer_200_with_no_matches_and_say_why(client, images_engine):
    body = client.get("/api/images/search?q=qwzxv plorbit").get_json()
    assert body["matches"] == [] and body["confident"] is False and "known" in body["message"]
    assert isinstance(body["model_run"], int)


def test_an_image_has_readable_tags_with_broader_words(client, images_engine):
    with images_engine.connect() as conn:
        dalmatian = conn.execute(sa.text("SELECT id FROM images WHERE label = 'dalmatian' ORDER BY id LIMIT 1")
                                 ).scalar()
        sql_dogs = set(conn.execute(sa.text("SELECT image_id FROM image_tags WHERE tag = 'dog' AND score > 0.5")
                                    ).scalars())
        labels = dict(conn.execute(sa.text("SELECT id, label FROM images")).all())
    body = client.get(f"/api/images/{dalmatian}/tags").get_json()
    tags = {t["tag"]: t for t in body["tags"]}
    assert "dalmatian" in tags and tags["dalmatian"]["direct"]
    # every answer carries each match's five best tags, from the same statement (so the same run)
    shown = client.get(f"/api/images/{dalmatian}").get_json()["tags"]
    assert shown == [t["tag"] for t in body["tags"][:5]]
    match = client.get("/api/images/search?q=dalmatian&k=1").get_json()["matches"][0]
    assert "dog" in match["tags"] or "dalmatian" in match["tags"]
    assert "dog" in tags and not tags["dog"]["direct"] and tags["dog"]["score"] >= tags["dalmatian"]["score"]
    assert body["tags"][0]["tag"] == "dalmatian"  # shown first: specific, though "dog" is more probable
    with images_engine.connect() as conn:  # every image's ranks run 1, 2, ... n
        gaps = conn.execute(sa.text("SELECT count(*) FROM (SELECT image_id FROM image_tags GROUP BY image_id "
                                    "HAVING min(rank) <> 1 OR max(rank) <> count(*)) g")).scalar()
    assert gaps == 0
    assert sum(labels[i] == "dalmatian" for i in sql_dogs) >= 10 and len(sql_dogs) <= 20  # the SQL way: dogs
    assert client.get("/api/images/999999/tags").status_code == 404


def test_an_uploaded_photo_gets_tags_without_being_stored(client, images_engine, data_dir):
    with images_engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM images")).scalar()
    data = (data_dir / "images" / "skimage-samples" / "motorcycle_left.png").read_bytes()
    body = client.post("/api/images/tags", data={"image": (io.BytesIO(data), "m.png")}).get_json()
    words = [t["tag"] for t in body["tags"]]
    assert {"moped", "motor scooter"} & set(words[:5]) and "motor vehicle" in words
    with images_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM images")).scalar() == before
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    assert client.post("/api/images/tags", data={}).status_code == 400
    assert client.post("/api/images/tags", data={"image": (io.BytesIO(b"nope"), "x.png")}).status_code == 400


def test_confidence_says_whether_the_collection_has_what_the_words_describe(client, images_engine):
    """Held (cups, aeroplanes) versus absent (volcanoes, jellyfish): the calibrated confidence tells them apart.
    (Sunflowers are held but ImageNet has no sunflower class, so that query is found with low confidence.)"""
    held = [client.get("/api/images/search", query_string={"q": q}).get_json() for q in ("a cup", "aeroplane")]
    absent = [client.get("/api/images/search", query_string={"q": q}).get_json() for q in ("volcano", "jellyfish")]
    assert all(b["confident"] and b["confidence"] > 0.5 for b in held), [b["confidence"] for b in held]
    assert all(not b["confident"] and b["confidence"] < 0.5 for b in absent), [b["confidence"] for b in absent]
    assert all(b["matches"] for b in absent)  # the closest images are still shown, with a message saying so
    assert "closest" in absent[0]["message"]


def test_the_command_line_search_prints_the_same_matches(images_engine, client):
    from click.testing import CliRunner

    from marconi.cli import main

    url = images_engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg2://", "postgresql://")
    result = CliRunner().invoke(main, ["--database-url", url, "search", "images", "--text", "aeroplane", "--k", "3"])
    assert result.exit_code == 0, result.output
    api = client.get("/api/images/search?q=aeroplane&k=3").get_json()
    printed = [int(line.split()[0]) for line in result.output.splitlines()[1:] if line.strip()]
    assert printed == [m["id"] for m in api["matches"]] and "confidence" in result.output.splitlines()[0]


def test_eval_images_compares_distance_metrics_on_the_stored_vectors(images_engine):
    import json

    from click.testing import CliRunner

    from marconi.cli import main

    url = images_engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg2://", "postgresql://")
    result = CliRunner().invoke(main, ["--database-url", url, "eval", "images", "--metrics", "cosine,served"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["queries"] == 90 and out["labels"] == 6 and set(out) >= {"cosine", "served", "model_run"}
    assert out["served"]["P@1"] > 0.7 and out["cosine"]["P@10"] > 0.5
    bad = CliRunner().invoke(main, ["--database-url", url, "eval", "images", "--metrics", "hamming"])
    assert bad.exit_code != 0 and "unknown metric 'hamming'" in bad.output
    neither = CliRunner().invoke(main, ["--database-url", url, "eval", "images"])
    assert neither.exit_code == 2 and "--queries" in neither.output


def test_sql_scores_the_stored_classes_as_the_class_space_says(images_engine):
    """images_by_classes (the served SQL) ranks by Σ weight × stored score ** the query's power, the arithmetic of
    ClassSpace.score_stored that the text benches measure: 0.5 for a short query, 1 for a description."""
    import numpy as np

    from marconi.db import image_words
    from marconi.text.query import ClassSpace

    space = ClassSpace(encoder=None)  # WordNet weights only: enough to compare the arithmetic
    with images_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT image_id, class_index, score FROM image_classes")).all()
        ids = sorted({r[0] for r in rows})
        stored = np.zeros((len(ids), 1000), dtype=np.float32)
        for image_id, c, score in rows:
            stored[ids.index(image_id), c] = score
        for text, power in (("dog", 0.5), ("a dog with black spots", 1.0)):
            query = space.query(text)
            assert query.score_power == power
            expected = space.score_stored(query, stored)
            got = image_words.images_by_classes(conn, query.classes, query.weights, 10, query.score_power)
            assert np.allclose([r["score"] for r in got], np.sort(expected)[::-1][:10], rtol=1e-4)
            assert [ids.index(r["image_id"]) for r in got][:3] == list(np.argsort(-expected, kind="stable")[:3])
        unpowered = image_words.images_by_classes(conn, query.classes, query.weights, 10, 0.5)
        assert not np.allclose([r["score"] for r in unpowered], [r["score"] for r in got])  # the power reaches SQL
