-- input: crm_customers (raw export)                   output: customers
--
-- One row per customer id from the CRM export. When an id appears more than once, the row with
-- the latest signup_date wins (ties: the greatest email). Impossible values become NULL: birth
-- dates giving an age outside 14..110 at the run date, negative incomes.
--
-- Privacy takes the safe side: when rows tie with the winner on signup_date (nothing says which
-- is newer) but disagree on marketing_opt_in, the customer is not opted in, whatever row wins
-- the tie, and `opt_in_conflict` marks them (counted in event_drops).
SELECT
  customer_id,
  CASE
    WHEN birth_date IS NULL THEN NULL
    WHEN date_part('year', DATE '{{run_date}}') - date_part('year', birth_date) BETWEEN 14 AND 110
      THEN CAST(date_part('year', DATE '{{run_date}}') - date_part('year', birth_date) AS INT)
  END AS age,
  CAST((date_part('epoch', DATE '{{run_date}}') - date_part('epoch', signup_date)) / 86400 AS INT) AS tenure_days,
  CASE WHEN annual_income >= 0 THEN annual_income END AS annual_income,
  gender,
  country,
  city,
  COALESCE(loyalty_tier, 'none') AS loyalty_tier,
  all_opted_in AS marketing_opt_in,
  any_opted_in AND NOT all_opted_in AS opt_in_conflict
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY signup_date DESC, email DESC) AS version,
    BOOL_AND(COALESCE(marketing_opt_in, false))
      OVER (PARTITION BY customer_id, signup_date) AS all_opted_in,
    BOOL_OR(COALESCE(marketing_opt_in, false))
      OVER (PARTITION BY customer_id, signup_date) AS any_opted_in
  FROM crm_customers
  WHERE customer_id IS NOT NULL
)
WHERE version = 1
