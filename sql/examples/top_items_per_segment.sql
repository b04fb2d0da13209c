-- The five items recommended most often to each segment's customers (latest date), and how
-- many of those recommendations came from the model rather than the popularity fallback.
SELECT segment_id, segment_label, item_id, customers, from_model
FROM (
  SELECT p.segment_id, p.segment_label, r.item_id,
         COUNT(*) AS customers,
         SUM(CASE WHEN r.source = 'als' THEN 1 ELSE 0 END) AS from_model,
         ROW_NUMBER() OVER (PARTITION BY p.segment_id ORDER BY COUNT(*) DESC, r.item_id) AS place
  FROM recommendations r
  JOIN user_profiles p ON p.customer_id = r.customer_id
  GROUP BY p.segment_id, p.segment_label, r.item_id
) ranked
WHERE place <= 5
ORDER BY segment_id, place;
