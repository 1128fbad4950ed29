-- Images by tag: the 10 images most likely to show a dog (any breed: "dog" is a broader word of every breed's
-- class), with the tag's score (the summed probability of the image's classes that carry it).
SELECT t.image_id, round(t.score::numeric, 3) AS score, i.label, i.source_url
FROM image_tags t
JOIN images i ON i.id = t.image_id
WHERE t.tag = 'dog'
ORDER BY t.score DESC, t.image_id
LIMIT 10;
