"""What a radio request may ask for, checked before anything touches the database."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from marconi.recommenders.prompt import MAX_PROMPT_CHARS

MAX_SIZE = 200
MAX_SEEDS = 50
MAX_EXCLUDE = 200
MAX_NAMES = 20  # artists or tags in one radio (from the body and the prompt together)

SeedKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Mode = Literal["easy", "medium", "hard"]


class RadioRequest(BaseModel):
    """A radio from seed songs (track keys: find them with GET /api/songs?q=...), artist names, tag names and/or a
    prompt (``artist:(Madonna) tag:(80s) #mode easy``); at least one of them (400 otherwise)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              json_schema_extra={"example": {"seeds": ["yes_small:61"], "size": 25}})

    seeds: tuple[SeedKey, ...] = Field((), max_length=MAX_SEEDS, description=(
        "track keys of seed songs (GET /api/songs?q=...). Keys the catalogue does not know, or too rare to be in the "
        "model, are listed in `ignored_seeds` while the others play; when none is known the answer is 404 "
        "`unknown_seeds`."))
    artists: tuple[Name, ...] = Field((), max_length=MAX_NAMES,
                                      description="artist names, any case or accents (GET /api/artists?q=...); an "
                                                  "unknown one is 404 `unknown_artist` with the `closest` names")
    tags: tuple[Name, ...] = Field((), max_length=MAX_NAMES,
                                   description="tag names (GET /api/tags?q=...); an unknown one is 404 `unknown_tag` "
                                               "with the `closest` names")
    prompt: str | None = Field(None, min_length=1, max_length=MAX_PROMPT_CHARS,
                               description="LB Radio style, e.g. `artist:(Madonna) tag:(80s) #mode easy`; adds "
                                           "to `artists` and `tags` (at most 20 of each in all), its `#mode` wins "
                                           "over `mode`. One that does not parse is 400 `bad_prompt` with the "
                                           "`position` where it stops.")
    mode: Mode = Field("medium", description="easy: close to the seeds; medium: the default radio; hard: wanders "
                                             "(more variety, fewer songs of the seeds' artists)")
    size: int = Field(25, ge=1, le=MAX_SIZE, description="number of songs in the playlist")
    max_per_artist: int | None = Field(None, ge=1, le=MAX_SIZE,
                                       description="at most this many songs per artist (null: no limit)")
    variety: float = Field(0.0, ge=0, le=1, description="extra variety on top of the mode: higher re-ranks the "
                                                         "candidates by score minus variety x hubness, so the songs "
                                                         "that turn up in every radio give way (0.25 to 0.5 "
                                                         "suggested; docs/evaluation.md)")
    exclude: tuple[SeedKey, ...] = Field((), max_length=MAX_EXCLUDE,
                                         description="songs (track keys) or artists (names, any case) to leave "
                                                     "out, e.g. the songs a listener skipped")

    @field_validator("seeds", "exclude", "artists", "tags", mode="before")
    @classmethod
    def _list_of_seeds(cls, value):
        """Accept a JSON list for the tuple."""
        return tuple(value) if isinstance(value, list) else value

    @field_validator("variety")
    @classmethod
    def _six_decimals(cls, variety: float) -> float:
        """Round to 6 decimals: finer steps change nothing, and denormal numbers would underflow in SQL."""
        return round(variety, 6)

    @field_validator("seeds", "exclude", "artists", "tags")
    @classmethod
    def _distinct(cls, seeds: tuple[str, ...]) -> tuple[str, ...]:
        """Drop repeated entries, keeping the first of each."""
        return tuple(dict.fromkeys(seeds))

    @model_validator(mode="after")
    def _something_to_start_from(self) -> RadioRequest:
        """At least one of seeds, artists, tags or prompt."""
        if not (self.seeds or self.artists or self.tags or self.prompt):
            raise ValueError("give at least one of 'seeds', 'artists', 'tags' or 'prompt'")
        return self

