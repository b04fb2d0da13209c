-- input: web_logs_flagged, app_events_flagged, identity_map, customers     output: event_drops
--
-- Data-quality counters: rows read and rows dropped per source and reason. The flagged tables
-- carry the reasons decided in staging; stitching adds 'anonymous' (no customer even after
-- identity stitching) and 'unknown_customer' (not in the CRM export).
WITH web AS (
  SELECT
    CASE
      WHEN w.drop_reason IS NOT NULL THEN w.drop_reason
      WHEN COALESCE(w.customer_id, m.customer_id) IS NULL THEN 'anonymous'
      WHEN c.customer_id IS NULL THEN 'unknown_customer'
    END AS reason
  FROM web_logs_flagged w
  LEFT JOIN identity_map m ON w.customer_id IS NULL AND w.cookie_id = m.cookie_id
  LEFT JOIN customers c ON COALESCE(w.customer_id, m.customer_id) = c.customer_id
),
app AS (
  SELECT
    CASE
      WHEN a.drop_reason IS NOT NULL THEN a.drop_reason
      WHEN c.customer_id IS NULL THEN 'unknown_customer'
    END AS reason
  FROM app_events_flagged a
  LEFT JOIN customers c ON a.customer_id = c.customer_id
)
SELECT 'web_logs' AS source, COALESCE(reason, 'kept') AS reason, COUNT(*) AS rows FROM web GROUP BY 1, 2
UNION ALL
SELECT 'app_events' AS source, COALESCE(reason, 'kept') AS reason, COUNT(*) AS rows FROM app GROUP BY 1, 2
