-- Tags of an image: what the classifier sees in the first image, in the order its page shows them (rank: specific
-- words before general ones). score = the summed probability of its top classes that carry the word; direct = a
-- class name, otherwise a broader word (WordNet). image_classes has the classes themselves, with probabilities.
SELECT t.rank, t.tag, round(t.score::numeric, 3) AS score, t.direct
FROM image_tags t
WHERE t.image_id = (SELECT min(image_id) FROM image_tags)
ORDER BY t.rank
LIMIT 15;
