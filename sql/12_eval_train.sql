-- input: events, user_index, item_index               output: eval_train
--
-- The nightly evaluation's training set: the interactions of the window *before* the holdout
-- days ({{holdout_start}} onwards), weighted as 10_interactions.sql weighs them (time decay
-- measured from the end of the training days) and keyed by the same integer ids.
SELECT
  u.user_idx,
  i.item_idx,
  CAST(LEAST(SUM(
    CASE e.event_type
      WHEN 'view' THEN {{weight_view}}
      WHEN 'click' THEN {{weight_click}}
      WHEN 'add_to_cart' THEN {{weight_add_to_cart}}
      WHEN 'purchase' THEN {{weight_purchase}}
    END
    * CASE WHEN {{half_life_days}} > 0
        THEN power(0.5, (extract(epoch FROM TIMESTAMP '{{holdout_start}}') - extract(epoch FROM e.ts)) / 86400.0 / {{half_life_days}})
        ELSE 1.0
      END), {{max_weight}}) AS FLOAT) AS weight
FROM events e
JOIN user_index u ON e.customer_id = u.customer_id
JOIN item_index i ON e.item_id = i.item_id
WHERE e.ts < TIMESTAMP '{{holdout_start}}'
  AND e.event_type IN ('view', 'click', 'add_to_cart', 'purchase')
GROUP BY u.user_idx, i.item_idx
