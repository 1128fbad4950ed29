"""Marconi installed from its wheel, outside the repository: the wheel carries what the program reads (migrations,
templates, static files, SQL examples), declares its dependencies, and `marconi db upgrade` and `marconi serve` work.

The wheel is built from a copy of the source (so no build/ folder is left in the clone) with the venv's setuptools,
and installed into a fresh venv in tmp_path. That venv borrows the dependencies from the test's venv through a
.pth line naming its site-packages (a plain path: the .pth files there, among them the clone's editable install, are
not run), so nothing is downloaded and the clone is not on sys.path.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from packaging.requirements import Requirement

from marconi.config import REPO_ROOT
from marconi.db.migrate import head_revision
from marconi.serving import wait_until_healthy

SOURCES = ("pyproject.toml", "README.md", "marconi", "scrapers", "migrations", "sql")
PAGES = ("/", "/radio", "/search", "/status", "/api/openapi.json", "/api/docs")
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def pins() -> dict[str, str]:
    """requirements.txt's pins: normalised name → version."""
    found = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            found[_normal(req.name)] = str(req.specifier).removeprefix("==")
    return found


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def test_every_pin_lies_in_the_declared_range_and_every_dependency_is_pinned():
    """Each pin of requirements.txt is declared in pyproject.toml, as a dependency or in an extra (ray), and the
    reverse."""
    extras = [dep for deps in PYPROJECT["project"].get("optional-dependencies", {}).values() for dep in deps]
    declared = {_normal(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"] + extras)}
    pinned = pins()
    assert set(declared) == set(pinned)
    outside = {name: (pinned[name], str(req.specifier)) for name, req in declared.items()
               if not req.specifier.contains(pinned[name], prereleases=True)}
    assert not outside


def test_every_package_folder_is_listed_for_the_wheel():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO_ROOT).parts)
               for top in ("marconi", "scrapers") for p in (REPO_ROOT / top).rglob("__init__.py")}
    assert folders - listed == set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list, cwd: Path, env: dict | None = None, timeout: float = 120) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the clone's sources with the venv's setuptools (no network)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
          src, "-w", root / "dist"], cwd=root)
    (built,) = (root / "dist").glob("marconi-*.whl")
    return built


def test_the_wheel_carries_what_the_program_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"marconi/migrations/{p.relative_to(REPO_ROOT / 'migrations')}"
                for p in (REPO_ROOT / "migrations").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    for folder in ("marconi/web/templates", "marconi/web/static", "sql"):
        prefix = folder if folder.startswith("marconi/") else f"marconi/{folder}"
        expected |= {f"{prefix}/{p.relative_to(REPO_ROOT / folder)}"
                     for p in (REPO_ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert "marconi/migrations/env.py" in expected and "marconi/sql/examples/radio_from_seeds.sql" in expected
    assert expected - names == set()
    assert "marconi/wsgi.py" in names and "scrapers/__main__.py" in names
    assert not [n for n in names if n.split("/")[0] in ("migrations", "sql", "tests", "wsgi.py")]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the repository with the wheel installed; dependencies borrowed from this venv."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    python = venv / "bin" / "python"
    # installed before the .pth exists, so pip sees no marconi (the clone's editable one) in this environment
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
         cwd=venv.parent)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=venv.parent)
                .strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@pytest.fixture()
def env(installed, tmp_path) -> dict:
    """The environment of a user of the installed Marconi: its venv first on PATH, no clone anywhere."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MARCONI_DATA_DIR", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {"PATH": f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(installed),
                  "MARCONI_HOME": str(tmp_path / "home"), "MARCONI_LOG_LEVEL": "WARNING"}


PROBE = """
import importlib.metadata, json, marconi, marconi.config, marconi.errors, marconi.resources, marconi.cli.sql
print(json.dumps({"marconi": marconi.__file__, "repo_root": marconi.config.REPO_ROOT and str(marconi.config.REPO_ROOT),
                  "data_dir": marconi.config.from_env().data_dir and str(marconi.config.from_env().data_dir),
                  "migrations": str(marconi.resources.migrations_dir()),
                  "example": str(marconi.cli.sql.sql_file("similar_images")),
                  "requires": importlib.metadata.requires("marconi"),
                  "version": importlib.metadata.version("marconi")}))
try:
    marconi.config.from_env().require_data_dir()
except marconi.errors.MarconiError as exc:
    print(exc)
"""


@pytest.mark.slow
def test_installed_marconi_upgrades_a_database_and_serves_its_pages(installed, env, new_database, tmp_path):
    started = time.monotonic()
    probe = _run([installed / "bin" / "python", "-c", PROBE], cwd=tmp_path, env=env).splitlines()
    found = json.loads(probe[0])
    for key in ("marconi", "migrations", "example"):
        assert Path(found[key]).is_relative_to(installed), (key, found[key])
    assert found["repo_root"] is None and found["data_dir"] is None
    assert "MARCONI_DATA_DIR is not set" in probe[1]
    declared = {_normal(Requirement(r).name) for r in found["requires"]}
    assert declared == set(pins())

    url = new_database(migrated=False)
    env["DATABASE_URL"] = url
    _run(["marconi", "db", "upgrade"], cwd=tmp_path, env=env)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"), poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    engine.dispose()

    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(["marconi", "serve", "--port", str(port), "--workers", "1"], cwd=tmp_path, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(base, server, 45)
        except RuntimeError as exc:
            raise AssertionError((tmp_path / "serve.log").read_text()) from exc
        answers = {page: requests.get(base + page, timeout=30) for page in PAGES}
        assert {page: r.status_code for page, r in answers.items()} == dict.fromkeys(PAGES, 200)
        assert answers["/api/openapi.json"].json()["paths"]
        css = next(part.split('"')[0] for part in answers["/"].text.split('href="')[1:] if "marconi.css" in part)
        sheet = requests.get(base + css, timeout=10)
        assert (sheet.status_code, sheet.text) == (200, (REPO_ROOT / "marconi/web/static/marconi.css").read_text())
        scripts = [part.split('"')[0] for part in answers["/api/docs"].text.split('<script src="')[1:]]
        assert scripts and all(requests.get(base + src, timeout=10).status_code == 200 for src in scripts)
    finally:
        server.terminate()
        server.wait(15)
        log.close()
    assert time.monotonic() - started < 50
