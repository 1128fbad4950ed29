-- The radio question, step by step, as the radio() function (migration 0006) asks it. The web API calls
-- radio() itself, so what you read here is what it answers.
--
-- 1. The query vector is the sum of the seeds' unit input vectors: song_query_vector(seeds).
-- 2. The candidates are the item vectors nearest to it: radio_candidates(seeds, k) runs
--        ORDER BY vec <-> q LIMIT k        (cube GiST index, exact; exact => true)
--    or  ORDER BY hvec <#> q LIMIT k       (pgvector HNSW inner product, when the serving run has that index)
--    radio() itself asks radio_candidates_near(q, k), which for a catalogue of 500,000 songs or more
--    (migration 0013) reads the run's IVFFlat index instead:
--        ORDER BY hvec::halfvec(64) <#> q LIMIT k   (ivfflat.probes lists; the index scores every list centroid,
--                                                    so seeds in far-apart regions are all found)
--    Only these spellings use an index; ORDER BY cube_distance(vec, q) gives the same order by scanning all.
--    The item side carries one extra coordinate, sqrt(M^2 - |v|^2), so the nearest in Euclidean distance is the
--    song with the largest inner product with the query: word2vec's own co-occurrence score.
-- 3. score = that inner product over |q|, recovered from the distance d: (|q|^2 + M^2 - d^2) / (2 |q|), minus
--    variety * hub when variety > 0; seeds are dropped, at most max_per_artist songs per artist are kept.
--
-- psql:  \set seeds '{yes_small:61,yes_small:54}'
--        \i sql/radio.sql

-- step 2 alone: the 35 nearest candidates, with the model run they come from
SELECT c.run_id, t.key, t.title, t.artist, round(c.distance::numeric, 4) AS distance
FROM radio_candidates(:'seeds'::text[], 35) c
JOIN tracks t ON t.id = c.track_id
ORDER BY c.distance;

-- the whole radio: 25 songs, at most 2 per artist, a little variety
SELECT key, title, artist, round(score::numeric, 4) AS score, run_id
FROM radio(:'seeds'::text[], 25, max_per_artist => 2, variety => 0.25);
