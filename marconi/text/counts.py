"""Numbers in words: "a vehicle with two wheels" counts wheels, and so do WordNet's definitions.

Sentence vectors do not count: "a vehicle with two wheels" is as close to a car ("a motor vehicle with four
wheels") as to a motorcycle ("a motor vehicle with two wheels and a strong frame"). Both sides are read the same
way: a number word or numeral followed by a noun (or "two or four wheels"), the noun in its WordNet base form.

    counted("a vehicle with two wheels", base)        # {"wheel": {2}}
    counted("a small cart with two or four wheels", base)   # {"wheel": {2, 4}}
"""

from __future__ import annotations

import re
from collections.abc import Callable

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "twelve": 12, "single": 1, "pair": 2, "couple": 2}
_NUMBER = r"(\d{1,3}|" + "|".join(NUMBERS) + r")"
_COUNTED = re.compile(rf"\b{_NUMBER}(?:\s+(?:or|to)\s+{_NUMBER})?\s+(?:of\s+)?([a-z]+)\b", re.IGNORECASE)


def number(word: str) -> int:
    """Return the value of a number word or numeral ("two" → 2, "4" → 4)."""
    word = word.lower()
    return int(word) if word.isdigit() else NUMBERS[word]


def counted(text: str, base_form: Callable[[str], str]) -> dict[str, set[int]]:
    """Return {noun (base form): the numbers said of it} for every "number noun" in ``text``.

    ``base_form`` maps a word to its noun lemma ("wheels" → "wheel"); "a pair of shoes" counts 2 shoes.
    """
    out: dict[str, set[int]] = {}
    for first, second, noun in _COUNTED.findall(text):
        values = {number(first)} | ({number(second)} if second else set())
        out.setdefault(base_form(noun.lower()), set()).update(values)
    return out
