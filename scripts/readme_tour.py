"""Write the README tour's console block from a real run, so its numbers are never typed by hand.

Run it against the demo once it is serving (``bash scripts/demo.sh``)::

    .venv/bin/python scripts/readme_tour.py --url http://127.0.0.1:5000 --write README.md

Each step of :data:`TOUR` is sent to the server; the block between the README's ``tour:begin`` and ``tour:end``
markers is replaced by each step's command and its answer, shortened (the first few list items, then ``…``) and
wrapped to fit the page. Without ``--write`` the block is printed. ``tests/api/test_readme_tour.py`` runs every
step against the test app and checks that the README shows exactly these commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readme_block import replace_between  # scripts/readme_block.py

BEGIN = "<!-- tour:begin: written by scripts/readme_tour.py from a run of the demo; do not edit by hand -->"
END = "<!-- tour:end -->"
HOST = "http://127.0.0.1:5000"
WIDTH = 116
ELLIPSIS = "…"
MAX_TEXT = 80  # longer strings (messages) are cut


@dataclass(frozen=True)
class Step:
    """One request of the tour: what the reader types, what is sent, and which parts of the answer are shown."""

    path: str
    json: dict | None = None
    photo: str | None = None  # a photo under the data directory, posted as the multipart field "image"
    keys: tuple[str, ...] = ()  # top-level keys shown (all when empty)
    item_keys: tuple[str, ...] = ()  # keys shown of each item of a list (all when empty)
    items: int = 2  # list items shown before "…"
    comment: str = ""

    @property
    def command(self) -> str:
        url = HOST + self.path
        if self.photo:
            return f"curl -s -F image=@../shared/data/{self.photo} {url}"
        if self.json is not None:
            body = json.dumps(self.json, ensure_ascii=False)
            return (f"curl -s -X POST {url} -H 'Content-Type: application/json' \\\n"
                    f"       -d '{body}'")
        return f"curl -s '{url}'"


SONG = ("key", "title", "artist")
PLAYED = ("key", "title", "artist", "score", "reason")
RADIO = ("seeds", "ignored_seeds", "artists", "tags", "mode", "model_run", "playlist")
MATCH = ("id", "label", "similarity")
IMAGES = ("model_run", "encoder", "confidence", "confident", "message", "matches")

TOUR: tuple[Step, ...] = (
    Step("/api/songs?q=beyonce&limit=2", item_keys=SONG + ("has_vector",)),
    Step("/api/radio", json={"seeds": ["yes_small:61"], "size": 5, "max_per_artist": 1}, keys=RADIO,
         item_keys=PLAYED),
    Step("/api/radio", json={"seeds": ["yes_small:61", "nope:1"], "size": 5,
                             "exclude": ["Nicki Minaj", "yes_small:5"]},
         keys=("ignored_seeds", "exclude", "playlist"), item_keys=PLAYED),
    Step("/api/radio", json={"artists": ["madonna"], "tags": ["80s"], "mode": "easy", "size": 5},
         keys=("artists", "tags", "mode", "playlist"), item_keys=PLAYED, items=3,
         comment='or "prompt": "artist:(madonna) tag:(80s) #mode easy"'),
    Step("/api/artists?q=mad&limit=3", items=3, comment="suggestions; /api/tags?q=ro likewise"),
    Step("/api/images/search", photo="images/skimage-samples/motorcycle_left.png", keys=IMAGES,
         item_keys=MATCH, items=3),
    Step("/api/images/search", photo="images/skimage-samples/gravel.png", keys=IMAGES, item_keys=MATCH, items=1),
    Step("/api/images/search", photo="images/skimage-samples/chelsea.png", keys=IMAGES, item_keys=MATCH, items=3),
    Step("/api/images/search?q=a+dog+with+black+spots&k=3", keys=IMAGES, item_keys=MATCH, items=3,
         comment="words → images"),
    Step("/api/words/similar?q=aeroplane&k=5", items=5, comment="words near a word"),
)

# (method, path, json body, photo path or None) → (HTTP status, decoded JSON answer)
Fetch = Callable[[str, str, "dict | None", "Path | None"], "tuple[int, Any]"]


def shorten(value: Any, step: Step, depth: int = 0) -> Any:
    """Keep the step's keys, its first list items and the start of long texts; mark cuts with "…"; round floats."""
    if isinstance(value, dict):
        wanted = step.keys if depth == 0 else step.item_keys
        if not wanted or not wanted & value.keys():  # items of another kind (a radio's artists) are kept whole
            wanted = value.keys()
        return {k: shorten(v, step, depth + 1) for k, v in value.items() if k in wanted}
    if isinstance(value, list):
        head = [shorten(v, step, depth + 1) for v in value[: step.items]]
        return head + [ELLIPSIS] if len(value) > step.items else head
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT].rsplit(" ", 1)[0].rstrip(",;:") + " " + ELLIPSIS  # cut at a word
    return value


def render(value: Any, indent: int = 0, tail: int = 0) -> str:
    """JSON on one line when it fits the page, else its items packed into lines; "…" is written bare. ``tail``: how
    many characters will follow the value on its last line (the closing brackets around it, a comma)."""
    one_line = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace(f'"{ELLIPSIS}"', ELLIPSIS)
    if indent + len(one_line) + tail <= WIDTH or not isinstance(value, (dict, list)) or not value:
        return one_line
    items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
    parts = []
    for i, (key, item) in enumerate(items):
        after = tail + 1 if i == len(items) - 1 else 1  # the last item is followed by the closer, others by ","
        prefix = "" if key is None else json.dumps(key, ensure_ascii=False) + ":"
        parts.append((prefix + render(item, indent + 1 + len(prefix), after), after))
    lines, line = [], ""
    for part, after in parts:  # as many items on a line as fit; an item that spans lines gets lines of its own
        if line and ("\n" in part or indent + 1 + len(line) + 1 + len(part) + after > WIDTH):
            lines.append(line)
            line = ""
        line = f"{line},{part}" if line else part
        if "\n" in part:
            lines.append(line)
            line = ""
    if line:
        lines.append(line)
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return opening + (",\n" + " " * (indent + 1)).join(lines) + closing


def run(fetch: Fetch, data_dir: Path) -> str:
    """Send every step; return the console block's text. A step that does not answer 2xx stops the tour."""
    lines = []
    for step in TOUR:
        photo = data_dir / step.photo if step.photo else None
        status, body = fetch("POST" if step.json is not None or photo else "GET", step.path, step.json, photo)
        if not 200 <= status < 300:
            raise SystemExit(f"{step.command}\n  answered {status}: {body}")
        comment = f"   # {step.comment}" if step.comment else ""
        lines.append(f"$ {step.command}{comment}")
        lines.append(render(shorten(body, step)))
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def replace_block(readme: str, block: str) -> str:
    """The README with the text between the markers replaced by a console block holding ``block``."""
    return replace_between(readme, BEGIN, END, "```console\n" + block + "\n```")


def http_fetch(base_url: str) -> Fetch:
    """A fetch over HTTP with requests."""
    import requests

    def fetch(method: str, path: str, body: dict | None, photo: Path | None) -> tuple[int, Any]:
        files = {"image": (photo.name, photo.read_bytes())} if photo else None
        resp = requests.request(method, base_url.rstrip("/") + path, json=body, files=files, timeout=60)
        return resp.status_code, resp.json()

    return fetch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=HOST, help="the serving demo (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the sample data folder (default: MARCONI_DATA_DIR, else ../shared/data)")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the tour block in this file")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        from marconi.config import from_env

        args.data_dir = from_env().data_dir
    block = run(http_fetch(args.url), args.data_dir)
    if args.write:
        args.write.write_text(replace_block(args.write.read_text(encoding="utf-8"), block), encoding="utf-8")
        print(f"wrote the tour ({len(TOUR)} requests) into {args.write}")
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
