"""Wikidata: the image classes of the reverse image search, from the SPARQL endpoint.

A class is an item that is the "instance of" (P31) value of some other item and has an image (P18), an English
label and description, and an English Wikipedia article. The query is paged with ORDER BY + LIMIT/OFFSET; each page
is stored with the cursor's new offset in one transaction, and each new class queues its Commons file
(``commons_files``) in that same transaction, for ``python -m scrapers commons images``.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa

from marconi.db import scrape
from marconi.progress import progress as progress_bar
from scrapers import finish_summary
from scrapers.http import ScraperSession, get_json

log = logging.getLogger(__name__)

CURSOR = "wikidata_classes"
PAGE_SIZE = 500
QUERY_TIMEOUT = 65.0  # seconds; the public endpoint stops queries after 60 s
_QID = re.compile(r"^Q[1-9][0-9]*$")

CLASS_QUERY = """\
SELECT ?class ?label ?description ?article (SAMPLE(?img) AS ?image) WHERE {
  ?class wdt:P18 ?img .
  FILTER EXISTS { ?instance wdt:P31 ?class . }
  ?class rdfs:label ?label . FILTER(LANG(?label) = "en")
  ?class schema:description ?description . FILTER(LANG(?description) = "en")
  ?article schema:about ?class ; schema:isPartOf <https://en.wikipedia.org/> .
}
GROUP BY ?class ?label ?description ?article
ORDER BY ?class
LIMIT %(limit)d
OFFSET %(offset)d
"""


class SparqlError(RuntimeError):
    """The SPARQL endpoint failed after the session's retries, or answered something unusable."""


def class_query(limit: int, offset: int) -> str:
    """The class query for one page (``limit`` and ``offset`` are integers, never user text)."""
    return CLASS_QUERY % {"limit": int(limit), "offset": int(offset)}


def run_sparql(session: ScraperSession, endpoint: str, query: str, timeout: float = QUERY_TIMEOUT) -> dict:
    """Run a SELECT query and return the SPARQL JSON results; raise SparqlError on failure."""
    data = get_json(session, endpoint, SparqlError, "SPARQL JSON", params={"query": query, "format": "json"},
                    headers={"Accept": "application/sparql-results+json"},
                    timeout=(session.settings.connect_timeout, timeout))
    try:
        bindings = data["results"]["bindings"]
    except (KeyError, TypeError):
        raise SparqlError(f"malformed SPARQL JSON: {str(data)[:200]!r}") from None
    if not isinstance(bindings, list):
        raise SparqlError("malformed SPARQL JSON: bindings is not a list")
    return data


def qid_from_uri(uri: str | None) -> str | None:
    """'http://www.wikidata.org/entity/Q146' → 'Q146'; None for anything else (blank nodes, statements)."""
    if not uri:
        return None
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    return last if _QID.match(last) else None


def file_name_from_image(value: str | None) -> str | None:
    """Commons file name (spaces, no 'File:') from a P18 value: a Special:FilePath URL or a bare file name."""
    if not value:
        return None
    if value.startswith(("http://", "https://")):
        value = unquote(urlsplit(value).path.rsplit("/", 1)[-1])
    name = value.replace("_", " ").strip()
    if name.lower().startswith("file:"):
        name = name[5:].strip()
    return name or None


def parse_class_rows(data: dict) -> list[dict]:
    """Turn SPARQL JSON bindings into class dicts (qid, label, description, wikipedia_url, image_file).

    Rows without a QID, an English label or an image are dropped; a class repeated in the page keeps its first row.
    """
    out: dict[str, dict] = {}
    for b in data["results"]["bindings"]:
        def val(name, b=b):
            v = b.get(name)
            return v.get("value") if isinstance(v, dict) else None

        qid = qid_from_uri(val("class"))
        label = (val("label") or "").strip()
        image = file_name_from_image(val("image"))
        if not qid or not label or not image or qid in out:
            continue
        out[qid] = {"qid": qid, "label": label, "description": (val("description") or "").strip() or None,
                    "wikipedia_url": val("article"), "image_file": image}
    return list(out.values())


def scrape_classes(engine: sa.Engine, session: ScraperSession, endpoint: str, limit: int = 1000,
                   page_size: int = PAGE_SIZE, query_timeout: float = QUERY_TIMEOUT, progress: bool = True) -> dict:
    """Store classes until ``limit`` are known (or the query is exhausted); return a summary.

    The cursor (SPARQL OFFSET) advances with each stored page; a restart continues from it. A page that fails after
    the retries stops the run (nothing of it is stored) and the next run asks for it again.
    """
    started = time.monotonic()
    summary = {"pages": 0, "classes": 0, "failed": 0, "stopped": None}
    with engine.connect() as conn:
        have = scrape.class_count(conn)
    bar = progress_bar(total=limit, initial=min(have, limit), unit="class", desc="wikidata classes",
                       enabled=progress)
    try:
        while True:
            with engine.connect() as conn:
                offset, done = scrape.get_cursor(conn, CURSOR)
                have = scrape.class_count(conn)
            if have >= limit:
                summary["stopped"] = "limit reached"
                break
            if done:
                summary["stopped"] = "query exhausted"
                break
            try:
                rows = run_sparql(session, endpoint, class_query(page_size, offset), query_timeout)
            except SparqlError as exc:
                log.error("SPARQL page at offset %d failed: %s", offset, exc)
                summary["failed"] += 1
                summary["stopped"] = f"error: {exc}"[:300]
                break
            n_rows = len(rows["results"]["bindings"])
            classes = parse_class_rows(rows)
            with engine.begin() as conn:
                remaining = limit - scrape.class_count(conn)
                known = scrape.known_class_ids(conn, [c["qid"] for c in classes])
                new = [c for c in classes if c["qid"] not in known]
                take = new[:remaining]
                # A page is consumed only when all its new classes fit; otherwise the cursor stays for the next run.
                all_fit = len(new) <= remaining
                inserted = scrape.add_classes(conn, take)
                scrape.set_cursor(conn, CURSOR, offset + n_rows if all_fit else offset,
                                  all_fit and n_rows < page_size)
            summary["pages"] += 1
            summary["classes"] += len(inserted)
            bar.update(len(inserted))
    finally:
        bar.close()
    with engine.connect() as conn:
        summary["classes_total"] = scrape.class_count(conn)
    return finish_summary(summary, started, session, "classes")
