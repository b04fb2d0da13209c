-- input: events, user_index, item_index               output: interactions
--
-- The implicit-feedback matrix: one row per (customer, item) with the summed event weights
-- (configurable: [recommendations.weights]), each halved for every {{half_life_days}} days of
-- age at the end of the window when half_life_days > 0 (time decay), capped at max_weight;
-- and whether the customer bought the item. Staged once per run; the ALS fit groups it once.
SELECT
  u.user_idx,
  i.item_idx,
  CAST(LEAST(SUM(
    CASE e.event_type
      WHEN 'view' THEN {{weight_view}}
      WHEN 'click' THEN {{weight_click}}
      WHEN 'add_to_cart' THEN {{weight_add_to_cart}}
      WHEN 'purchase' THEN {{weight_purchase}}
      ELSE 0
    END
    * CASE WHEN {{half_life_days}} > 0
        THEN power(0.5, (extract(epoch FROM TIMESTAMP '{{window_end}}') - extract(epoch FROM e.ts)) / 86400.0 / {{half_life_days}})
        ELSE 1.0
      END), {{max_weight}}) AS FLOAT) AS weight,
  BOOL_OR(e.event_type = 'purchase') AS purchased
FROM events e
JOIN user_index u ON e.customer_id = u.customer_id
JOIN item_index i ON e.item_id = i.item_id
WHERE e.event_type IN ('view', 'click', 'add_to_cart', 'purchase')
GROUP BY u.user_idx, i.item_idx
