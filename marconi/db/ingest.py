"""TEMPORARY re-exports while callers move: use marconi.db.tracks, .playlists, .status and .images instead."""

from marconi.db.images import ImageRecord, upsert_image  # noqa: F401
from marconi.db.playlists import Playlist, upsert_playlists  # noqa: F401
from marconi.db.status import counts  # noqa: F401
from marconi.db.tracks import Track, track_ids, upsert_tracks  # noqa: F401
