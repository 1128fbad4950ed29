-- Images near a label's centroid: the mean of the indexed (PCA) vectors of all "Motorbikes" images, and the 10
-- images nearest to it, i.e. the most typical motorbikes, and any other label that creeps in.
WITH centroid AS MATERIALIZED (
    SELECT cube(array_agg(c ORDER BY d)) AS v
    FROM (
        SELECT d, avg(cube_ll_coord(iv.vec, d)) AS c
        FROM image_vectors iv
        JOIN images i ON i.id = iv.image_id
        CROSS JOIN LATERAL generate_series(1, cube_dim(iv.vec)) AS d
        WHERE i.label = 'Motorbikes'
        GROUP BY d
    ) coords
)
SELECT i.id, i.label, round(cube_distance(iv.vec, (SELECT v FROM centroid))::numeric, 4) AS distance
FROM image_vectors iv JOIN images i ON i.id = iv.image_id
ORDER BY iv.vec <-> (SELECT v FROM centroid)
LIMIT 10;
