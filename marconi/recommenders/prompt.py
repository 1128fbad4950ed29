"""Radio prompts in the spirit of ListenBrainz's LB Radio: ``artist:(Madonna) tag:(80s) #mode easy``.

Grammar (whitespace separates terms; keywords in any case)::

    prompt := term*
    term   := ("artist" | "tag") ":" (name | "(" text ")")  |  "#mode" mode
    name   := characters up to the next whitespace (no parentheses)
    text   := any characters, parentheses balanced (so ``artist:(Guns (N) Roses)`` works)
    mode   := "easy" | "medium" | "hard"

A prompt that does not parse raises :class:`BadPrompt` whose ``position`` is the character (counting from 1)
where the parser stopped. Pure Python, linear time, no database.
"""

from __future__ import annotations

from dataclasses import dataclass

from marconi.errors import BadRequest

MODES = ("easy", "medium", "hard")
MAX_PROMPT_CHARS = 10_000
KINDS = ("artist", "tag")


class BadPrompt(BadRequest):
    """A prompt that does not parse; ``position`` (from 1) says where."""

    code = "bad_prompt"

    def __init__(self, message: str, position: int):
        """``message`` says what was expected; ``position`` is the character (from 1) where it went wrong."""
        super().__init__(f"{message} at character {position} of the prompt", position=position)
        self.position = position


@dataclass(frozen=True)
class Prompt:
    """A parsed prompt: artist names and tag names in the order given (repeats dropped), and the mode if set."""

    artists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    mode: str | None = None


def parse_prompt(text: str) -> Prompt:
    """Parse a radio prompt; raise BadPrompt (a 400) naming the character where it stops making sense."""
    if len(text) > MAX_PROMPT_CHARS:
        raise BadPrompt(f"the prompt is longer than {MAX_PROMPT_CHARS} characters", MAX_PROMPT_CHARS + 1)
    found: dict[str, dict[str, None]] = {"artist": {}, "tag": {}}
    mode: str | None = None
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] == "#":
            mode, i = _mode(text, i)
            continue
        colon = _word_end(text, i)
        keyword = text[i:colon].lower()
        if keyword not in KINDS or colon >= n or text[colon] != ":":
            raise BadPrompt("expected artist:(name), tag:(name) or #mode easy|medium|hard", i + 1)
        name, i = _name(text, colon + 1, keyword)
        found[keyword].setdefault(name, None)
    if not found["artist"] and not found["tag"]:
        raise BadPrompt("the prompt names no artist: or tag:", max(n, 1))
    return Prompt(artists=tuple(found["artist"]), tags=tuple(found["tag"]), mode=mode)


def _word_end(text: str, i: int) -> int:
    """Index after the keyword starting at ``i`` (letters only)."""
    while i < len(text) and text[i].isalpha() and text[i].isascii():
        i += 1
    return i


def _name(text: str, i: int, kind: str) -> tuple[str, int]:
    """The name after ``kind:`` at ``i`` (bare or parenthesised) and the index after it."""
    n = len(text)
    if i < n and text[i] == "(":
        depth, j = 1, i + 1
        while j < n and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        if depth:
            raise BadPrompt(f"the parenthesis opened here for {kind}: is never closed", i + 1)
        name = " ".join(text[i + 1: j - 1].split())
        if not name:
            raise BadPrompt(f"empty {kind} name", i + 1)
        if j < n and not text[j].isspace():
            raise BadPrompt(f"expected a space after the {kind} name", j + 1)
        return name, j
    j = i
    while j < n and not text[j].isspace():
        if text[j] in "()":
            raise BadPrompt(f"a {kind} name with parentheses or spaces goes in parentheses: {kind}:(...)", j + 1)
        j += 1
    if j == i:
        raise BadPrompt(f"expected a {kind} name after '{kind}:'", i + 1)
    return text[i:j], j


def _mode(text: str, i: int) -> tuple[str, int]:
    """``#mode <mode>`` at ``i``: the mode and the index after it."""
    end = _word_end(text, i + 1)
    if text[i + 1: end].lower() != "mode" or (end < len(text) and not text[end].isspace()):
        raise BadPrompt("the only option is #mode easy|medium|hard", i + 1)
    j = end
    while j < len(text) and text[j].isspace():
        j += 1
    k = j
    while k < len(text) and not text[k].isspace():
        k += 1
    word = text[j:k].lower()
    if word not in MODES:
        raise BadPrompt("#mode takes easy, medium or hard", j + 1)
    return word, k
