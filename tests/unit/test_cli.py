"""The `marconi` command's wiring: help for every group, clear one-line errors (no database)."""

import click
import pytest
from click.testing import CliRunner

from marconi.cli import main

GROUPS = {
    "db": {"upgrade", "status", "stop", "url"},
    "import": {"playlists", "images"},
    "train": {"songs", "images"},
    "encode": {"images"},
    "eval": {"split", "radio", "images", "text-images"},
    "search": {"images"},
}
COMMANDS = {"serve", "sql", "demo", "status"}


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_top_level_help_lists_every_group_and_command(runner, flag):
    result = runner.invoke(main, [flag])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage:")
    for name in [*GROUPS, *COMMANDS]:
        assert f"\n  {name} " in result.output, name


def test_the_wiring_is_exactly_what_is_documented():
    assert set(main.commands) == set(GROUPS) | COMMANDS
    for group, subcommands in GROUPS.items():
        assert isinstance(main.commands[group], click.Group)
        assert set(main.commands[group].commands) == subcommands


@pytest.mark.parametrize("group", sorted(GROUPS))
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_group_has_help_naming_its_subcommands(runner, group, flag):
    result = runner.invoke(main, [group, flag])
    assert result.exit_code == 0, result.output
    for sub in GROUPS[group]:
        assert f"\n  {sub} " in result.output, (group, sub)


@pytest.mark.parametrize("args", [["serve"], ["sql"], ["demo"], ["status"], ["train", "songs"],
                                  ["eval", "radio"], ["import", "playlists"], ["encode", "images"]])
def test_every_command_has_help(runner, args):
    result = runner.invoke(main, [*args, "-h"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {' '.join(args)}")


def test_training_options_come_from_song_params(runner):
    from marconi.training.song2vec import SongParams

    result = runner.invoke(main, ["train", "songs", "--help"])
    assert "--vector-size" in result.output and f"[default: {SongParams().vector_size}]" in result.output


def test_a_bad_setting_is_one_clear_line(runner):
    result = runner.invoke(main, ["status"], env={"MARCONI_MAX_UPLOAD_BYTES": "abc"})
    assert result.exit_code == 1
    assert result.output.strip() == "Error: MARCONI_MAX_UPLOAD_BYTES must be an integer of at least 1, got 'abc'"


def test_a_marconi_error_is_one_clear_line(runner, tmp_path):
    result = runner.invoke(main, ["eval", "split", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path}: not a yes.com directory")
    assert "Traceback" not in result.output


def test_the_scrapers_have_their_own_command():
    """`marconi-scrape` (scrapers depend on marconi, so marconi's command does not reach into them)."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([str(Path(sys.executable).with_name("marconi-scrape")), "-h"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: marconi-scrape")
    for group in ("spotify", "wikidata", "commons", "status"):
        assert f"\n  {group} " in result.stdout
