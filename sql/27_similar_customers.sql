-- input: customer_neighbour_rows, user_index            output: similar_customers
--
-- The customer-to-customer model's neighbours by customer id: for every customer with
-- interactions in the window, the customers whose interactions correlate best with theirs
-- (sql/16_customer_neighbour_rows.sql says how), best first. Lookalike audiences start here:
-- "customers like our best customers" are the similar_customer_id of a list of customer_id.
SELECT
  a.customer_id,
  n.rank,
  b.customer_id AS similar_customer_id,
  n.similarity
FROM customer_neighbour_rows n
JOIN user_index a ON n.user_idx = a.user_idx
JOIN user_index b ON n.neighbour_idx = b.user_idx
