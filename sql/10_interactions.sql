-- input: events, user_index, item_index               output: interactions (eval_train)
--
-- The implicit-feedback matrix: one row per (customer, item) with the summed event weights,
-- each halved for every {{half_life_days}} days of age at {{interactions_end}} when
-- half_life_days > 0 (time decay), capped at max_weight; and whether the customer bought the
-- item. Staged once per run; the ALS fit groups it once. An event's weight is
-- {{event_weight}}: the weight of its type in [recommendations.weights]; the event types
-- that have one are {{interaction_events}} (both rendered from the one list in config.rs).
--
-- The one definition of an interaction's weight: the night runs this file twice, as
-- `interactions` over the whole window (interactions_end = the window's end) and as
-- `eval_train`, the evaluation's training days (interactions_end = the holdout's start).
-- `persona als` runs it too, over its input table mapped to `events` (one event type,
-- {{event_weight}} = the input's weight column, no decay, no cap).
SELECT
  u.user_idx,
  i.item_idx,
  CAST(LEAST(SUM(
    {{event_weight}}
    * CASE WHEN {{half_life_days}} > 0
        THEN power(0.5, (extract(epoch FROM TIMESTAMP '{{interactions_end}}') - extract(epoch FROM e.ts)) / 86400.0 / {{half_life_days}})
        ELSE 1.0
      END), {{max_weight}}) AS FLOAT) AS weight,
  BOOL_OR(e.event_type = 'purchase') AS purchased
FROM events e
JOIN user_index u ON e.customer_id = u.customer_id
JOIN item_index i ON e.item_id = i.item_id
WHERE e.ts < TIMESTAMP '{{interactions_end}}'
  AND e.event_type IN {{interaction_events}}
GROUP BY u.user_idx, i.item_idx
