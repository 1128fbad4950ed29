"""marconi.api.params: request models checked in one place, errors naming the field and the rule (no database)."""

from typing import Annotated, Literal

import pytest
from flask import Flask, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from marconi.api import errors
from marconi.api.params import form_args, json_body, query_args, validate
from marconi.errors import BadRequest

Key = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"example": {"seeds": ["yes_small:0"], "size": 25}})
    seeds: list[Key] = Field(min_length=1, max_length=3)
    size: int = Field(25, ge=1, le=200)
    variety: float = Field(0.0, ge=0, le=1)
    max_per_artist: int | None = Field(None, ge=1)
    shuffle: bool = False
    order: Literal["score", "title"] = "score"

    @field_validator("seeds")
    @classmethod
    def _keys_have_a_prefix(cls, seeds):
        if any(":" not in s for s in seeds):
            raise ValueError("must be track keys such as 'yes_small:61'")
        return seeds


class Query(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": "/find?q=love&limit=20"})
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    limit: int = Field(20, ge=1, le=100)
    tags: list[str] = []
    exact: bool = False


class Form(BaseModel):
    k: int = Field(10, ge=1, le=50)


@pytest.fixture(scope="module")
def client():
    app = Flask(__name__)

    @app.post("/body")
    def body():
        return jsonify(json_body(Body).model_dump())

    @app.get("/find")
    def find():
        return jsonify(query_args(Query).model_dump())

    @app.post("/upload")
    def upload():
        return jsonify(form_args(Form).model_dump())

    errors.register(app)
    return app.test_client()


def error(resp, status=400) -> str:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert body["status"] == status and body["code"] == "bad_request"
    return body["error"]


def test_a_good_body_is_parsed(client):
    resp = client.post("/body", json={"seeds": ["yes:1"], "size": 5, "variety": 1, "max_per_artist": None})
    assert resp.status_code == 200
    assert resp.get_json() == {"seeds": ["yes:1"], "size": 5, "variety": 1.0, "max_per_artist": None,
                               "shuffle": False, "order": "score"}


EXAMPLE = '; for example {"seeds": ["yes_small:0"], "size": 25}'


@pytest.mark.parametrize("kwargs, message", [
    ({}, "send a JSON body with Content-Type: application/json" + EXAMPLE),
    ({"data": "{not json", "content_type": "application/json"},
     "send a JSON body with Content-Type: application/json" + EXAMPLE),
    ({"data": '{"seeds": ["a:1"]}', "content_type": "text/plain"},
     "send a JSON body with Content-Type: application/json" + EXAMPLE),
    ({"json": ["a:1"]}, "the JSON body must be an object, not a list" + EXAMPLE),
    ({"json": {}}, "'seeds' is required" + EXAMPLE),
    ({"json": {"seeds": "a:1"}}, "'seeds' must be a list" + EXAMPLE),
    ({"json": {"seeds": []}}, "'seeds' must hold 1 to 3 items" + EXAMPLE),
    ({"json": {"seeds": ["a:1"] * 4}}, "'seeds' must hold 1 to 3 items" + EXAMPLE),
    ({"json": {"seeds": [""]}}, "'seeds[0]' must not be empty" + EXAMPLE),
    ({"json": {"seeds": ["x" * 101]}}, "'seeds[0]' is limited to 100 characters" + EXAMPLE),
    ({"json": {"seeds": [3]}}, "'seeds[0]' must be a string" + EXAMPLE),
    ({"json": {"seeds": ["nocolon"]}}, "'seeds' must be track keys such as 'yes_small:61'" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "size": 0}}, "'size' must be an integer from 1 to 200" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "size": 201}}, "'size' must be an integer from 1 to 200" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "size": "5"}}, "'size' must be an integer from 1 to 200" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "size": 2.5}}, "'size' must be an integer from 1 to 200" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "size": True}}, "'size' must be an integer from 1 to 200" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "variety": 2}}, "'variety' must be a number from 0 to 1" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "variety": "lots"}}, "'variety' must be a number from 0 to 1" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "max_per_artist": 0}}, "'max_per_artist' must be an integer of at least 1"
     + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "shuffle": "yes"}}, "'shuffle' must be true or false" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "order": "random"}}, "'order' must be 'score' or 'title'" + EXAMPLE),
    ({"json": {"seeds": ["a:1"], "colour": "red"}},
     "unknown field 'colour': the fields are 'seeds' (required), 'size', 'variety', 'max_per_artist', 'shuffle', "
     "'order'" + EXAMPLE),
    ({"json": {"seeds": ["a:1\x00"]}}, "'seeds[0]' must not contain NUL characters"),
    ({"json": {"seeds": ["a:1"], "nested": {"x\x00": 1}}}, "'nested' must not contain NUL characters"),
])
def test_bad_bodies_name_the_field_and_the_rule(client, kwargs, message):
    assert error(client.post("/body", **kwargs)) == message


def test_several_problems_are_listed(client):
    msg = error(client.post("/body", json={"size": 0, "variety": 5, "shuffle": 1, "order": 2, "extra": 1}))
    assert msg.startswith("unknown field 'extra'")
    assert "'seeds' is required" in msg and "(and 3 more)" in msg


def test_query_args_are_lax_and_typed(client):
    resp = client.get("/find?q=%20love%20&limit=5&tags=a&tags=b&exact=yes&unknown=1")
    assert resp.get_json() == {"q": "love", "limit": 5, "tags": ["a", "b"], "exact": True}
    assert client.get("/find?q=x&limit=").get_json()["limit"] == 20  # empty means not given


@pytest.mark.parametrize("query, message", [
    ("", "'q' is required; for example /find?q=love&limit=20"),
    ("?q=", "'q' is required; for example /find?q=love&limit=20"),
    ("?q=%20%20", "'q' must not be empty; for example /find?q=love&limit=20"),
    ("?q=" + "x" * 21, "'q' is limited to 20 characters; for example /find?q=love&limit=20"),
    ("?q=a%00b", "'q' must not contain NUL characters"),
    ("?q=a&limit=ten", "'limit' must be an integer from 1 to 100; for example /find?q=love&limit=20"),
    ("?q=a&limit=1.5", "'limit' must be an integer from 1 to 100; for example /find?q=love&limit=20"),
    ("?q=a&limit=101", "'limit' must be an integer from 1 to 100; for example /find?q=love&limit=20"),
    ("?q=a&exact=perhaps", "'exact' must be true or false; for example /find?q=love&limit=20"),
])
def test_bad_query_strings(client, query, message):
    assert error(client.get("/find" + query)) == message


def test_form_args(client):
    assert client.post("/upload", data={"k": "7"}).get_json() == {"k": 7}
    assert client.post("/upload", data={}).get_json() == {"k": 10}
    assert error(client.post("/upload", data={"k": "0"})) == "'k' must be an integer from 1 to 50"


def test_validate_without_flask():
    assert validate(Form, {"k": 3}).k == 3
    with pytest.raises(BadRequest) as err:
        validate(Form, {"k": 99})
    assert err.value.status == 400 and str(err.value) == "'k' must be an integer from 1 to 50"


def test_other_errors_keep_their_json_shape(client):
    resp = client.get("/nowhere")
    assert resp.status_code == 404 and resp.get_json()["code"] == "not_found"
    assert resp.get_json()["error"].startswith("no such endpoint")
    resp = client.get("/body")
    assert resp.status_code == 405 and resp.get_json()["status"] == 405
