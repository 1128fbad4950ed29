-- Tags of an image: what the classifier sees in the first image, best first. direct = a class name; otherwise a
-- broader word (WordNet) of one of its top classes. image_classes has the classes themselves, with probabilities.
SELECT t.tag, round(t.score::numeric, 3) AS score, t.direct
FROM image_tags t
WHERE t.image_id = (SELECT min(image_id) FROM image_tags)
ORDER BY t.score DESC, t.tag
LIMIT 15;
