-- The most played songs: how many imported playlists each song appears in (a popularity baseline).
SELECT t.title, t.artist, count(DISTINCT pt.playlist_id) AS playlists
FROM playlist_tracks pt JOIN tracks t ON t.id = pt.track_id
GROUP BY t.id
ORDER BY playlists DESC, t.title
LIMIT 20;
