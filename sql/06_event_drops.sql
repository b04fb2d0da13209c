-- input: web_logs_flagged, app_events_flagged, events, customers
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
-- copies) or anonymous (a web row that identity_map could not stitch), so the anonymous copies
-- are those that passed less those in `events`, without another pass over the web logs.
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
-- Staging's reasons, and the copies that passed (drop_reason NULL), in one aggregation: each
-- flagged table is read once (a CTE named twice would be planned, and read, twice).
reasons AS (
  SELECT source, drop_reason, day, SUM(copies) AS copies
  FROM staged
  GROUP BY source, drop_reason, day
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
-- The copies that passed, beside what became of them in `events` (stitching's reasons).
counted AS (
  SELECT
    r.source,
    r.day,
    r.drop_reason,
    r.copies,
    COALESCE(k.rows, 0) AS kept,
    COALESCE(k.copies, 0) - COALESCE(k.rows, 0) - COALESCE(k.unknown, 0) AS duplicate,
    -- Every copy that passed is in `events` or anonymous: no join repeats or drops a row
    -- there (one customer per cookie in identity_map, per id in customers and items).
    r.copies - COALESCE(k.copies, 0) AS anonymous,
    COALESCE(k.unknown, 0) AS unknown_customer
  FROM reasons r
  LEFT JOIN kept k
    ON r.drop_reason IS NULL AND r.source = k.source AND r.day IS NOT DISTINCT FROM k.day
),
-- One row per (source, day, reason): a staging reason as counted, the passed copies as the
-- four reasons of stitching.
every_reason AS (
  SELECT
    source,
    day,
    unnest(CASE WHEN drop_reason IS NULL
      THEN ['kept', 'duplicate', 'anonymous', 'unknown_customer']
      ELSE [drop_reason] END) AS reason,
    unnest(CASE WHEN drop_reason IS NULL
      THEN [kept, duplicate, anonymous, unknown_customer]
      ELSE [copies] END) AS rows
  FROM counted
)
SELECT source, reason, day, rows
FROM every_reason
WHERE rows > 0
