-- How the recommendations scored offline, night after night: ALS against the popularity
-- baseline on the held-out days (see the README, "Offline evaluation"), and ALS's lift.
-- A falling lift is the first sign that the model needs attention (data, weights, settings).
SELECT
  a.dt,
  a.users,
  round(a.ndcg_at_k, 4) AS als_ndcg,
  round(p.ndcg_at_k, 4) AS popular_ndcg,
  round(a.ndcg_at_k / NULLIF(p.ndcg_at_k, 0), 2) AS lift,
  round(a.precision_at_k, 4) AS als_precision,
  round(a.recall_at_k, 4) AS als_recall,
  round(a.coverage, 3) AS als_coverage
FROM evaluation_history a
JOIN evaluation_history p ON p.dt = a.dt AND p.model = 'popular'
WHERE a.model = 'als'
ORDER BY a.dt;
