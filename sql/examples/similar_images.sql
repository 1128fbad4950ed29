-- Images similar to one image: the 8 nearest images to the first dalmatian photo in the collection,
-- with their labels and licences (similar_images() uses the GiST index on image_vectors.vec).
SELECT s.id, s.label, i.licence, round(s.distance::numeric, 4) AS distance
FROM similar_images((SELECT min(id) FROM images WHERE label = 'dalmatian'), 8) s
JOIN images i ON i.id = s.id;
