-- Customers whose segment changed between the two latest published dates, with both labels.
-- Segment ids keep their meaning from night to night: each night's K-Means starts from the
-- previous night's centroids and its segments are matched to that night's (the manifest's
-- segments.continuity lists each segment's drift, and the segments that appeared or vanished,
-- which get ids of their own). A customer in another segment id really moved.
WITH days AS (
  SELECT dt, ROW_NUMBER() OVER (ORDER BY dt DESC) AS age
  FROM (SELECT DISTINCT dt FROM user_profiles_history)
),
today AS (
  SELECT p.customer_id, p.segment_id, p.segment_label, p.dt
  FROM user_profiles_history p JOIN days d ON p.dt = d.dt WHERE d.age = 1
),
yesterday AS (
  SELECT p.customer_id, p.segment_id, p.segment_label, p.dt
  FROM user_profiles_history p JOIN days d ON p.dt = d.dt WHERE d.age = 2
)
SELECT t.customer_id,
       y.dt AS previous_dt, y.segment_id AS previous_segment, y.segment_label AS previous_label,
       t.dt AS current_dt, t.segment_id AS current_segment, t.segment_label AS current_label
FROM today t
JOIN yesterday y ON y.customer_id = t.customer_id
WHERE t.segment_id <> y.segment_id
ORDER BY t.customer_id;
