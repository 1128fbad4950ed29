"""The README's tour is written by scripts/readme_tour.py: every step answers, and the README shows those steps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[2]


tour = load_script("readme_tour")


def _client_fetch(client):
    def fetch(method, path, body, photo):
        if photo is not None:
            resp = client.post(path, data={"image": (io.BytesIO(photo.read_bytes()), photo.name)},
                               content_type="multipart/form-data")
        elif body is not None:
            resp = client.post(path, json=body)
        else:
            resp = client.get(path)
        return resp.status_code, resp.get_json()

    return fetch


def _commands(block: str) -> list[str]:
    """The "$ …" lines of a console block, continuation lines (ending in a backslash) joined back."""
    commands, current = [], None
    for line in block.splitlines():
        if current is not None:
            current += "\n" + line
        elif line.startswith("$ "):
            current = line[2:]
        if current is not None and not current.endswith("\\"):
            commands.append(current)
            current = None
    return commands


def _expected_commands() -> list[str]:
    return [s.command + (f"   # {s.comment}" if s.comment else "") for s in tour.TOUR]


def test_every_step_of_the_tour_answers_and_is_shown(client, images_engine, data_dir):
    block = tour.run(_client_fetch(client), data_dir)
    assert _commands(block) == _expected_commands()
    answers = [line for line in block.splitlines() if line.startswith(("{", "["))]
    assert len(answers) == len(tour.TOUR)
    answer_lines = [line for line in block.splitlines() if not line.startswith(("$", "       -d"))]
    assert all(len(line) <= tour.WIDTH for line in answer_lines), max(answer_lines, key=len)


def test_a_step_that_fails_stops_the_tour(data_dir):
    with pytest.raises(SystemExit, match="answered 503"):
        tour.run(lambda *_: (503, {"error": "database unavailable"}), data_dir)


def test_the_readme_shows_exactly_the_tour():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(tour.BEGIN), readme.index(tour.END)
    assert _commands(readme[start:end]) == _expected_commands()


def test_shorten_keeps_the_chosen_keys_and_marks_what_is_left_out():
    step = tour.Step("/x", keys=("a", "items", "names", "note"), item_keys=("id",), items=2)
    body = {"a": 0.123456789, "b": "dropped", "items": [{"id": 1, "x": 9}, {"id": 2}, {"id": 3}],
            "names": [{"name": "Madonna"}], "note": "word " * 30}
    short = tour.shorten(body, step)
    assert short == {"a": 0.1235, "items": [{"id": 1}, {"id": 2}, tour.ELLIPSIS], "names": [{"name": "Madonna"}],
                     "note": "word " * 16 + tour.ELLIPSIS}
    assert tour.render({k: short[k] for k in ("a", "items")}) == '{"a":0.1235,"items":[{"id":1},{"id":2},…]}'


def test_render_breaks_long_answers_at_items_and_stays_json():
    value = {"songs": [{"title": "t" * 50, "n": i} for i in range(4)]}
    text = tour.render(value)
    assert len(text.splitlines()) > 1 and all(len(line) <= tour.WIDTH for line in text.splitlines())
    assert json.loads(text) == value


def test_render_leaves_room_for_the_closing_brackets():
    """The last item's line also carries "…" and the closers of every value around it ("…]}"): a title of any
    length stays within the page (an 80s radio's Tom Petty song once ran 2 characters over)."""
    for n in range(40, 72):  # up to the longest title whose item fits on one line
        value = {"mode": "easy", "playlist": [{"key": "yes_small:1", "title": "t" * n}, tour.ELLIPSIS]}
        lines = tour.render(value).splitlines()
        assert all(len(line) <= tour.WIDTH for line in lines), (n, max(lines, key=len))


def test_replace_block_swaps_only_the_text_between_the_markers():
    readme = f"intro\n{tour.BEGIN}\nold\n{tour.END}\noutro\n"
    new = tour.replace_block(readme, "$ curl x\n{}")
    assert new == f"intro\n{tour.BEGIN}\n```console\n$ curl x\n{{}}\n```\n{tour.END}\noutro\n"
    with pytest.raises(SystemExit, match="markers"):
        tour.replace_block("no markers", "x")
