"""`marconi status`: a short table for people, JSON with --json, and an outdated schema reported, not a traceback."""

import json
import re

from click.testing import CliRunner

from marconi.cli import main


def _status(url, *args):
    return CliRunner().invoke(main, ["--database-url", url, "status", *args], catch_exceptions=False)


def test_status_prints_a_table_of_the_database_schema_knn_and_serving_runs(trained_url):
    url = trained_url[0].replace("://postgres:@", "://postgres:s3cret@", 1)  # the socket's trust rule ignores it
    assert "s3cret" in url
    result = _status(url)
    assert result.exit_code == 0, result.output
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.output.splitlines())
    assert "s3cret" not in result.output and "postgres:***@" in lines["database"]  # a password is never printed
    assert lines["schema"].endswith(", current")
    assert "songs: " in lines["kNN"] and "images: cube GiST (exact)" in lines["kNN"]
    assert lines["songs model"].startswith("run ") and " vectors of " in lines["songs model"]
    assert "tracks" in lines["loaded"] and "playlists" in lines["loaded"]
    assert not result.output.lstrip().startswith("{")


def test_status_json_has_the_same_facts_and_the_newest_runs(trained_url):
    report = json.loads(_status(trained_url[0], "--json").output)
    assert report["schema"]["revision"] == report["schema"]["head"]
    assert report["counts"]["tracks"] > 3000 and report["serving"]["songs"]["status"] == "serving"
    assert report["knn"]["songs"] in ("pgvector HNSW", "cube GiST (exact)") and report["runs"]


def test_status_on_an_outdated_schema_says_to_upgrade(new_database):
    url = new_database(migrated=False)
    result = _status(url)
    assert result.exit_code == 1
    assert "schema" in result.output and "marconi db upgrade" in result.output and "Traceback" not in result.output
