"""The radio prompt parser (LB Radio style), including hostile input."""

import time

import pytest

from marconi.recommenders.prompt import MAX_PROMPT_CHARS, BadPrompt, Prompt, parse_prompt


@pytest.mark.parametrize("text, expected", [
    ("artist:(Madonna) tag:(80s) #mode easy", Prompt(("Madonna",), ("80s",), "easy")),
    ("artist:Madonna", Prompt(("Madonna",), (), None)),
    ("tag:rock tag:pop", Prompt((), ("rock", "pop"), None)),
    ("  #MODE Hard   ARTIST:(The   Rolling Stones)  ", Prompt(("The Rolling Stones",), (), "hard")),
    ("artist:(Guns (N) Roses)", Prompt(("Guns (N) Roses",), (), None)),
    ("tag:rock tag:rock artist:(Björk) artist:Sigur_Rós", Prompt(("Björk", "Sigur_Rós"), ("rock",), None)),
    ("artist:(AC/DC)\ttag:(hard rock)\n#mode medium", Prompt(("AC/DC",), ("hard rock",), "medium")),
    ("tag:日本 artist:(坂本 龍一)", Prompt(("坂本 龍一",), ("日本",), None)),
])
def test_prompts_that_parse(text, expected):
    assert parse_prompt(text) == expected


@pytest.mark.parametrize("text, position, words", [
    ("artist:(Madonna", 8, "never closed"),
    ("artist:()", 8, "empty artist name"),
    ("artist:(   )", 8, "empty artist name"),
    ("artist:", 8, "expected a artist name"),
    ("tag: rock", 5, "expected a tag name"),
    ("madonna", 1, "expected artist:"),
    ("artist:(Madonna) 80s", 18, "expected artist:"),
    ("genre:rock", 1, "expected artist:"),
    ("artist:Mad(onna", 11, "in parentheses"),
    ("artist:(Madonna)tag:80s", 17, "expected a space"),
    ("artist:x #mode insane", 16, "easy, medium or hard"),
    ("artist:x #mode", 15, "easy, medium or hard"),
    ("artist:x #colour red", 10, "only option"),
    ("#mode easy", 10, "names no artist"),
    ("", 1, "names no artist"),
    ("artist:x )", 10, "expected artist:"),
])
def test_prompts_that_do_not_parse_say_where(text, position, words):
    with pytest.raises(BadPrompt) as info:
        parse_prompt(text)
    assert info.value.position == position and words in info.value.message
    assert info.value.message.endswith(f"at character {position} of the prompt")
    body = info.value.to_dict()
    assert body["status"] == 400 and body["code"] == "bad_prompt" and body["position"] == position


def test_a_thousand_terms_parse_quickly():
    text = " ".join(f"tag:t{i}" for i in range(1000))
    t0 = time.perf_counter()
    assert len(parse_prompt(text).tags) == 1000
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("text", ["(" * 3000, "artist:" + "(" * 3000, "artist:(" + "x" * 3900 + ")" * 50,
                                  "#" * 3000, "artist:" + "\u0301" * 100])
def test_hostile_prompts_end_quickly_as_bad_prompt_or_parse(text):
    t0 = time.perf_counter()
    try:
        parse_prompt(text)
    except BadPrompt as exc:
        assert 1 <= exc.position <= len(text) + 1
    assert time.perf_counter() - t0 < 0.5


def test_overlong_prompt_is_refused():
    with pytest.raises(BadPrompt, match="longer than"):
        parse_prompt("tag:x " * (MAX_PROMPT_CHARS // 6 + 1))
