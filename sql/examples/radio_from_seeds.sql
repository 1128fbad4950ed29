-- Radio from seeds: 15 songs for a listener who likes "Halo" (Beyonce) and "Bad Romance" (Lady Gaga),
-- at most one song per artist. radio() is the same function the web API answers with; seeds are excluded.
SELECT key, title, artist, round(distance::numeric, 4) AS distance
FROM radio(ARRAY(SELECT key FROM tracks WHERE (title, artist) IN (('Halo', 'Beyonce'), ('Bad Romance', 'Lady Gaga'))),
           15, 1);
