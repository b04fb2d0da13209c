-- input: audience_counts, audiences, audience_customers, audience_changes   output: audience_summary
--
-- One row per declared audience, what a marketer checks before a send:
--   matched              customers the predicate selects
--   excluded_opt_out     of them, without marketing_opt_in (never in an audience)
--   excluded_suppressed  of the rest, in the suppressions/ input (never in an audience)
--   beyond_limit         contactable customers that `limit` cut off
--   size, holdout, contacted   the audience, its holdout (not contacted) and the rest
--   entered, left        since the previous published night (audience_changes)
--   expected_conversions the sum of the contacted customers' purchase probabilities (NULL
--                        when the propensity model did not run)
--   overlap              per other audience, the customers in both
--   segment_mix          customers per segment, largest first
WITH members AS (
  SELECT a.audience, a.customer_id, a.in_holdout, c.segment_id, c.segment_label, c.probability
  FROM audiences a
  JOIN audience_customers c ON c.customer_id = a.customer_id
),
sizes AS (
  SELECT
    audience,
    COUNT(*) AS size,
    SUM(CASE WHEN in_holdout THEN 1 ELSE 0 END) AS holdout,
    CAST(SUM(probability) FILTER (WHERE NOT in_holdout) AS DOUBLE) AS expected_conversions
  FROM members
  GROUP BY audience
),
moves AS (
  SELECT
    audience,
    SUM(CASE WHEN change = 'entered' THEN 1 ELSE 0 END) AS entered,
    SUM(CASE WHEN change = 'left' THEN 1 ELSE 0 END) AS "left"
  FROM audience_changes
  GROUP BY audience
),
pairs AS (
  SELECT a.audience, b.audience AS other, COUNT(*) AS customers
  FROM audiences a
  JOIN audiences b ON b.customer_id = a.customer_id AND b.audience <> a.audience
  GROUP BY a.audience, b.audience
),
overlaps AS (
  SELECT audience, array_agg(named_struct('audience', other, 'customers', customers) ORDER BY other) AS overlap
  FROM pairs
  GROUP BY audience
),
segment_counts AS (
  SELECT audience, segment_id, segment_label, COUNT(*) AS customers
  FROM members
  GROUP BY audience, segment_id, segment_label
),
mixes AS (
  SELECT
    audience,
    array_agg(named_struct('segment_id', segment_id, 'segment_label', segment_label, 'customers', customers)
              ORDER BY customers DESC, segment_id) AS segment_mix
  FROM segment_counts
  GROUP BY audience
)
SELECT
  n.audience,
  n.channel,
  n.matched,
  n.excluded_opt_out,
  n.excluded_suppressed,
  n.eligible - COALESCE(s.size, 0) AS beyond_limit,
  COALESCE(s.size, 0) AS size,
  COALESCE(s.holdout, 0) AS holdout,
  COALESCE(s.size, 0) - COALESCE(s.holdout, 0) AS contacted,
  COALESCE(m.entered, 0) AS entered,
  COALESCE(m."left", 0) AS "left",
  s.expected_conversions,
  o.overlap,
  x.segment_mix
FROM audience_counts n
LEFT JOIN sizes s ON s.audience = n.audience
LEFT JOIN moves m ON m.audience = n.audience
LEFT JOIN overlaps o ON o.audience = n.audience
LEFT JOIN mixes x ON x.audience = n.audience
