-- input: web_logs_flagged, app_events_flagged, identity_map, events, customers
-- output: event_drops
--
-- Data-quality counters: raw rows per source, reason and event day (NULL when the row has no
-- usable time), adding up to the rows read. Staging decided the reasons of distinct rows (all
-- their copies share it); extra copies of rows that became events are 'duplicate'; stitching
-- adds 'anonymous' (a web row with no customer even after identity stitching, dropped) and
-- 'unknown_customer' (an event of a customer missing from the CRM export: kept in `events` and
-- profiled, but counted apart, as a stale CRM export shows up here first). One more counter is
-- not about events: 'opt_in_conflict' of crm_customers, the customers whose CRM rows tie on
-- signup_date but disagree on marketing_opt_in (not opted in, on privacy's safe side).
--
-- Stitching is not redone here: a row that passed staging is either in `events` (with its
-- copies) or anonymous, so only the anonymous web rows need a look at the identity map.
WITH staged AS (
  SELECT 'web_logs' AS source, drop_reason, CAST(ts AS DATE) AS day, copies FROM web_logs_flagged
  UNION ALL
  SELECT 'app_events' AS source, drop_reason, CAST(ts AS DATE) AS day, copies FROM app_events_flagged
  -- Counted by the same aggregation as the staging reasons (not by one of its own, which on a
  -- Ballista cluster would add a shuffle stage to the job).
  UNION ALL
  SELECT 'crm_customers' AS source, 'opt_in_conflict' AS drop_reason, CAST(NULL AS DATE) AS day,
         CAST(1 AS BIGINT) AS copies
  FROM customers
  WHERE opt_in_conflict
),
passed AS (
  SELECT source, day, SUM(copies) AS copies
  FROM staged
  WHERE drop_reason IS NULL
  GROUP BY source, day
),
kept AS (
  SELECT
    source,
    CAST(ts AS DATE) AS day,
    COUNT(*) FILTER (WHERE in_crm) AS rows,
    COUNT(*) FILTER (WHERE NOT in_crm) AS unknown,
    SUM(copies) AS copies
  FROM events
  GROUP BY source, CAST(ts AS DATE)
),
anonymous AS (
  SELECT 'web_logs' AS source, CAST(w.ts AS DATE) AS day, SUM(w.copies) AS copies
  FROM web_logs_flagged w
  WHERE w.drop_reason IS NULL
    AND w.customer_id IS NULL
    AND NOT EXISTS (SELECT 1 FROM identity_map m WHERE m.cookie_id = w.cookie_id)
  GROUP BY CAST(w.ts AS DATE)
),
stitched AS (
  SELECT
    p.source,
    p.day,
    COALESCE(k.rows, 0) AS kept,
    COALESCE(k.copies, 0) - COALESCE(k.rows, 0) - COALESCE(k.unknown, 0) AS duplicate,
    COALESCE(a.copies, 0) AS anonymous,
    COALESCE(k.unknown, 0) AS unknown_customer
  FROM passed p
  LEFT JOIN kept k ON p.source = k.source AND p.day IS NOT DISTINCT FROM k.day
  LEFT JOIN anonymous a ON p.source = a.source AND p.day IS NOT DISTINCT FROM a.day
),
-- One row per (source, day, reason) of stitching, in the same shape as staging's reasons.
stitched_reasons AS (
  SELECT
    source,
    day,
    unnest(['kept', 'duplicate', 'anonymous', 'unknown_customer']) AS reason,
    unnest([kept, duplicate, anonymous, unknown_customer]) AS rows
  FROM stitched
)
SELECT source, drop_reason AS reason, day, SUM(copies) AS rows
FROM staged
WHERE drop_reason IS NOT NULL
GROUP BY source, drop_reason, day
UNION ALL
SELECT source, reason, day, rows
FROM stitched_reasons
WHERE rows > 0
