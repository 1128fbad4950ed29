-- What a model run contains: every run with its parameters, size and what it measured, newest first,
-- and how many vectors the serving runs actually hold.
SELECT r.id, r.kind, r.model, r.status, r.dims, r.n_vectors,
       r.params ->> 'vector_size' AS vector_size, r.params -> 'encoder' ->> 'name' AS encoder,
       r.metrics -> 'leave_one_out' ->> 'P@1' AS image_p_at_1,
       r.finished_at - r.started_at AS took,
       CASE r.kind WHEN 'songs' THEN (SELECT count(*) FROM song_vectors WHERE run_id = r.id)
                   ELSE (SELECT count(*) FROM image_vectors WHERE run_id = r.id) END AS vectors_in_table
FROM model_runs r
ORDER BY r.id DESC;
