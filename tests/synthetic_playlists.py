"""A small yes.com-format playlist set with structure to learn, for tests that train their own song model."""

from __future__ import annotations

from pathlib import Path


def synthetic_playlists(directory: Path, n_songs: int = 200, n_artists: int = 20, n_playlists: int = 1500) -> None:
    """Write ``song_hash.txt`` and ``train.txt`` under ``directory``: song i is by artist i % n_artists, and
    playlist j walks 8 songs from 7·j in steps of 1 + j % 3."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "song_hash.txt").write_text("".join(f"{i}\tsong {i}\tartist {i % n_artists}\n"
                                                     for i in range(n_songs)))
    lines = [" ".join(str((j * 7 + k * (1 + j % 3)) % n_songs) for k in range(8)) for j in range(n_playlists)]
    (directory / "train.txt").write_text("h\nh\n" + "\n".join(lines) + "\n")
