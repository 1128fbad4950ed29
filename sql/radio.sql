-- The radio question, as Marconi's API asks it (marconi/db/neighbours.py), written out for reading.
--
-- 1. The query vector is the sum of the seeds' unit input vectors (song_query_vector() does this in SQL).
-- 2. The candidates are the nearest item vectors to it: ORDER BY vec <-> q LIMIT k. Only this spelling uses the
--    GiST index on song_vectors.vec; ORDER BY cube_distance(vec, q) gives the same order by scanning everything.
--    The item side carries one extra coordinate (sqrt(M^2 - |v|^2)), so the nearest in Euclidean distance is the
--    song with the largest inner product with the query: word2vec's own co-occurrence score.
-- 3. Seeds are dropped, and at most max_per_artist songs per artist kept (the radio() function does the same).
--
-- psql:  \set seeds '{yes_small:61,yes_small:54}'
--        \i sql/radio.sql
SELECT t.key, t.title, t.artist, nn.distance
FROM (
    SELECT sv.track_id, cube_distance(sv.vec, song_query_vector(:'seeds'::text[])) AS distance
    FROM song_vectors sv
    ORDER BY sv.vec <-> song_query_vector(:'seeds'::text[])
    LIMIT 35
) nn
JOIN tracks t ON t.id = nn.track_id
WHERE NOT (t.key = ANY (:'seeds'::text[]))
ORDER BY nn.distance
LIMIT 25;
