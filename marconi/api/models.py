"""What the API answers, as pydantic models: each response shape declared once, for the OpenAPI document.

Views build plain dicts and ``jsonify`` them; ``marconi.api.openapi`` documents each route's answers from these
models, and tests/api/test_contract.py validates real answers against the schemas generated from them. Request
models live beside the code that reads them (``marconi.api.params`` validates them): the views' query models,
``marconi.recommenders.request.RadioRequest`` and ``marconi.image_search.request``.

A field that an answer may leave out is declared with :func:`optional` (not required, no default shown); a field
that is always there but may be null is ``X | None`` without a default.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from marconi.recommenders.request import Mode


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def optional(**kwargs: Any) -> Any:
    """A Field that an answer may leave out (the schema shows it, not required and without a default)."""
    return Field(None, json_schema_extra=_no_default, **kwargs)


NullableText = str | None


# ------------------------------------------------------------------------------------------------------- errors
class FormatOffered(BaseModel):
    """One format a radio comes in."""

    format: str
    media_type: str


class Error(BaseModel):
    """Every 4xx and 5xx answer: what went wrong in words, the status, a stable code, and the request id to report."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "'size' must be an integer from 1 to 200", "status": 400, "code": "bad_request",
         "request_id": "3f1c2a9b7d4e5f60"}]})

    error: str = Field(description="what went wrong and what to do next, in plain words")
    status: int = Field(description="the HTTP status, repeated")
    code: str = optional(description="a stable name for the failure, e.g. bad_request, not_found, unknown_seeds, "
                                     "bad_box, url_timeout, no_model, database_unavailable")
    request_id: str = optional(description="the X-Request-ID of this request: quote it when reporting a problem")
    unknown: list[str] = optional(description="unknown_seeds: the seed keys the catalogue does not know")
    closest: list[str] = optional(description="unknown_artist / unknown_tag: the nearest names the model knows")
    position: int = optional(ge=0, description="bad_prompt: the character (from 0) where the prompt stops parsing")
    formats: list[FormatOffered] = optional(description="bad_format / not_acceptable: the formats a radio comes in")


# ------------------------------------------------------------------------------------------------------ health
class Healthy(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class Ready(BaseModel):
    """Readiness: ``ready`` when the database answers with the right schema and a model serves."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "songs_model": 3, "images_model": 7}]})

    status: str = Field(description="ready, no model serving, schema outdated or unavailable")
    songs_model: int | None = optional(description="the serving song model run")
    images_model: int | None = optional(description="the serving image model run")
    error: str = optional(description="why it is not ready")


class Run(BaseModel):
    """A model run: what was trained or indexed, how, and how well."""

    id: int = optional()
    kind: str = optional()
    model: str = optional()
    params: dict[str, Any] = optional()
    dims: int | None = optional()
    n_vectors: int | None = optional()
    status: str = optional()
    started_at: NullableText = optional()
    finished_at: NullableText = optional()
    metrics: dict[str, Any] = optional()


class Serving(BaseModel):
    """The model run serving each kind of answer (null when none)."""

    songs: Run | None = optional()
    images: Run | None = optional()


class Status(BaseModel):
    """What is loaded, which model runs serve, and the database size."""

    counts: dict[str, int] = Field(description="rows per table")
    serving: Serving
    database_bytes: int
    replicas: list[dict[str, Any]] = optional(description="each read replica (password hidden): healthy or not, and "
                                                          "its replay lag")


# ------------------------------------------------------------------------------------------------ songs, radio
class Song(BaseModel):
    """A song of the catalogue; ``has_vector``: it can seed a radio."""

    key: str
    title: str
    artist: str
    has_vector: bool


class SongsPage(BaseModel):
    """One page of songs matching ``q``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"q": "love", "total": 2, "limit": 20, "offset": 0, "next_offset": None,
         "songs": [{"key": "yes_small:61", "title": "Crazy In Love", "artist": "Beyonce", "has_vector": True}]}]})

    q: str
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="the next page's offset; null on the last page")
    songs: list[Song]


class ArtistCount(BaseModel):
    """An artist and how many songs of theirs the catalogue holds."""

    name: str
    songs: int = Field(ge=0)


class TagCount(BaseModel):
    """A tag and how many songs carry it."""

    tag: str
    songs: int = Field(ge=0)


class ArtistsPage(BaseModel):
    """Artists whose name contains ``q``, exact and prefix matches first."""

    q: str
    artists: list[ArtistCount]


class TagsPage(BaseModel):
    """Tags whose name contains ``q``, exact and prefix matches first."""

    q: str
    tags: list[TagCount]


class TrackRef(BaseModel):
    """A seed song."""

    key: str
    title: str
    artist: str


class PlaylistItem(BaseModel):
    """One song of a radio, with why it is there."""

    key: str
    title: str
    artist: str
    distance: float
    score: float
    reason: NullableText = Field(description="why the song is there, e.g. \"close to Halo\", \"often played with "
                                             "Halo\", \"by Madonna\", \"tag: rock\"")
    spotify_url: NullableText = Field(description="the song on Spotify, when its key is a Spotify track id")


class ExcludedRef(BaseModel):
    """What one ``exclude`` entry named, so a page restored from a link can show names rather than keys."""

    value: str = Field(description="the entry as asked (after trimming)")
    kind: Literal["song", "artist", "unknown"] = Field(
        description="song: a track key; artist: an artist name (any case); unknown: matches nothing in the catalogue, "
                    "so it leaves nothing out (the radio still plays)")
    title: NullableText = Field(description="the song's title (songs only)")
    artist: NullableText = Field(description="the song's artist, or the artist as the catalogue spells it")


class Radio(BaseModel):
    """A radio: what it started from and the playlist."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"seeds": [{"key": "yes_small:61", "title": "Halo", "artist": "Beyonce"}], "ignored_seeds": [],
         "artists": [], "tags": [], "mode": "medium", "model_run": 3, "variety": 0.0, "exclude": ["yes_small:63"],
         "excluded": [{"value": "yes_small:63", "kind": "song", "title": "Single Ladies", "artist": "Beyonce"}],
         "size": 1,
         "playlist": [{"key": "yes_small:62", "title": "Irreplaceable", "artist": "Beyonce", "distance": 0.41,
                       "score": 0.87, "reason": "close to Halo", "spotify_url": None}]}]})

    seeds: list[TrackRef] = Field(description="the seed songs used")
    ignored_seeds: list[str] = Field(description="seed keys left out: unknown, or too rare to be in the model")
    artists: list[ArtistCount] = Field(description="the artists used, as the catalogue spells them")
    tags: list[TagCount] = Field(description="the tags used")
    mode: Mode
    model_run: int
    variety: float
    exclude: list[str] = Field(description="what was left out, as asked")
    excluded: list[ExcludedRef] = Field(description="what each `exclude` entry named, in the same order")
    size: int
    playlist: list[PlaylistItem]


# ------------------------------------------------------------------------------------------------------ images
class Image(BaseModel):
    """An image's metadata and links (``distance`` and ``similarity`` in search answers)."""

    id: int
    label: NullableText
    description: NullableText = optional()
    thumbnail_url: str
    image_url: str
    source_url: NullableText = optional()
    page_url: NullableText = optional()
    wikidata_url: NullableText = optional()
    licence: NullableText
    licence_url: NullableText = optional()
    author: NullableText = optional()
    attribution: NullableText = optional()
    width: int = optional()
    height: int = optional()
    animated: bool = optional()
    tags: list[str] = optional()
    distance: float | None = optional()
    similarity: Annotated[float, Field(ge=0, le=1)] | None = optional()


class QueryUsed(BaseModel):
    """What was searched: the photo's size and frames, the box, the URL, the stored image or the words."""

    width: int = optional()
    height: int = optional()
    frames: int = optional()
    box: list[Annotated[int, Field(ge=0)]] = optional(
        min_length=4, max_length=4, description="The box searched, [x, y, w, h] in whole pixels, clipped to the photo")
    url: str = optional()
    image_id: int = optional()
    thumbnail_url: str = optional()
    text: str = optional()


class SearchResult(BaseModel):
    """Images found, best first, and how sure the search is."""

    model_run: int
    encoder: str
    confidence: float = Field(ge=0, le=1)
    confident: bool
    message: str
    query: QueryUsed = optional()
    matches: list[Image]


class ImageTag(BaseModel):
    """A tag of an image: a class name (direct) or a broader word, with its score."""

    tag: str
    score: float = Field(ge=0, le=1.0001)
    direct: bool


class ImageTags(BaseModel):
    """An image's tags, best first."""

    tags: list[ImageTag]
    image_id: int = optional()
    model_run: int | None = optional()
    encoder: str = optional()
    query: QueryUsed = optional()


class SimilarWord(BaseModel):
    """A word and its cosine similarity to the query."""

    word: str
    similarity: float


class SimilarWords(BaseModel):
    """The words nearest to ``q``."""

    q: str
    used: list[str] = optional(description="the words of q that GloVe knows, whose mean vector was searched")
    words: list[SimilarWord]
