"""GET /api/words/similar: the nearest words to a word (or a short phrase) in GloVe's word-vector space."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from marconi.api.models import SimilarWords
from marconi.api.openapi import documented
from marconi.api.params import query_args
from marconi.text.words import WordVectors

bp = Blueprint("words", __name__)


class SimilarWordsQuery(BaseModel):
    """?q=word&k=10: the word (or a few words, averaged) and how many neighbours to return."""

    model_config = ConfigDict(json_schema_extra={"example": "/api/words/similar?q=dog&k=10"})

    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)] = Field(
        description="a word, or a few words (their mean is searched)")
    k: int = Field(10, ge=1, le=50, description="how many words")


def similar_words(query: SimilarWordsQuery) -> dict:
    """Return {"q", "used", "words": [{"word", "similarity"}]}; UnknownWord (404) when no word of q is known."""
    vectors = WordVectors.load()
    _, used = vectors.query_vector(query.q)
    words = vectors.nearest(query.q, query.k)
    return {"q": query.q, "used": used,
            "words": [{"word": word, "similarity": similarity} for word, similarity in words]}


@bp.get("/api/words/similar")
@documented("similarWords", (SimilarWords, "Nearest words"), (400, 404, 503), query=SimilarWordsQuery)
def similar():
    """Words near a word (GloVe 6B), for search suggestions."""
    return jsonify(similar_words(query_args(SimilarWordsQuery)))
