-- input: audiences, previous_audiences                       output: audience_changes
--
-- Who entered and who left each audience since the last published night before this one
-- (nothing before: everyone entered), for the incremental updates ad platforms and CRM tools
-- take. `in_holdout` is tonight's for those who entered and the last night's for those who
-- left. An audience no longer declared has all its customers leave, once.
SELECT
  COALESCE(t.audience, p.audience) AS audience,
  COALESCE(t.customer_id, p.customer_id) AS customer_id,
  CASE WHEN p.customer_id IS NULL THEN 'entered' ELSE 'left' END AS change,
  COALESCE(t.in_holdout, p.in_holdout) AS in_holdout
FROM audiences t
FULL OUTER JOIN previous_audiences p
  ON p.audience = t.audience AND p.customer_id = t.customer_id
WHERE t.customer_id IS NULL OR p.customer_id IS NULL
