-- Songs similar to one song: the 10 nearest songs to "Umbrella" by Rihanna (with any featured artists),
-- using that song's own query vector against the item vectors (ORDER BY vec <-> q LIMIT k uses the index).
WITH seed AS (
    SELECT key FROM tracks WHERE title ILIKE 'Umbrella%' AND artist = 'Rihanna' ORDER BY id LIMIT 1
), q AS MATERIALIZED (
    SELECT song_query_vector(ARRAY(SELECT key FROM seed)) AS v
)
SELECT t.title, t.artist, round(cube_distance(sv.vec, (SELECT v FROM q))::numeric, 4) AS distance
FROM song_vectors sv JOIN tracks t ON t.id = sv.track_id
WHERE t.key NOT IN (SELECT key FROM seed)
ORDER BY sv.vec <-> (SELECT v FROM q)
LIMIT 10;
