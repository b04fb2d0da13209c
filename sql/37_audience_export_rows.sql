-- input: audiences, crm_customers                             output: audience_export_rows
--
-- What the activation files under exports/dt=<date>/ hold: every contacted customer (not in
-- the holdout) of every audience, in rank order, and, only with [privacy]
-- export_hashed_emails = true, their e-mail address from the CRM export normalised (trimmed,
-- lower case) and hashed with SHA-256, as hex: the format ad platforms' customer-list uploads
-- take. The address is the one of the customer's latest CRM row (as sql/03_customers.sql picks
-- it); a customer without one has no hash. No other personal data is read.
WITH emails AS (
  SELECT customer_id, lower(trim(email)) AS email
  FROM (
    SELECT
      CAST(customer_id AS VARCHAR) AS customer_id,
      email,
      ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY signup_date DESC, email DESC) AS version
    FROM crm_customers
    WHERE customer_id IS NOT NULL AND {{export_hashed_emails}}
  )
  WHERE version = 1 AND email IS NOT NULL AND trim(email) <> ''
)
SELECT
  a.audience,
  a.rank,
  a.customer_id,
  encode(sha256(e.email), 'hex') AS email_sha256
FROM audiences a
LEFT JOIN emails e ON e.customer_id = a.customer_id
WHERE NOT a.in_holdout
