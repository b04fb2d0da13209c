-- input: events, user_index, item_index               output: interactions
--
-- The implicit-feedback matrix: one row per (customer, item) with the summed event weights,
-- each halved for every {{half_life_days}} days of age at {{interactions_end}} when
-- half_life_days > 0 (time decay), capped at max_weight; and whether the customer bought the
-- item. Staged once per run; the ALS fit groups it once. An event's weight is
-- {{event_weight}}: the weight of its type in [recommendations.weights]; the event types
-- that have one are {{interaction_events}} (both rendered from the one list in config.rs).
--
-- The one definition of an interaction's weight, and one pass over `events` for the night and
-- its evaluation: `train_weight` and `train_purchased` are the same over the evaluation's
-- training days only (before {{holdout_start}}, decayed to it; NULL when the pair has no event
-- then), and `in_holdout` says whether the pair has an event on the holdout's days.
-- eval_train (sql/12) and eval_holdout (sql/13) are filtered from here instead of each
-- reading `events` again. `persona als` runs this file too, over its input mapped to `events`
-- (one event type, {{event_weight}} = the input's weight column, no decay, no cap, every row
-- before the holdout).
SELECT
  user_idx,
  item_idx,
  CAST(LEAST(weight, {{max_weight}}) AS FLOAT) AS weight,
  purchased,
  -- LEAST skips a NULL argument, so a pair without training days keeps its NULL explicitly.
  CAST(CASE WHEN train_weight IS NOT NULL THEN LEAST(train_weight, {{max_weight}}) END AS FLOAT) AS train_weight,
  train_purchased,
  in_holdout
FROM (
  SELECT
    u.user_idx,
    i.item_idx,
    SUM({{event_weight}}
      * CASE WHEN {{half_life_days}} > 0
          THEN power(0.5, (extract(epoch FROM TIMESTAMP '{{interactions_end}}') - extract(epoch FROM e.ts)) / 86400.0 / {{half_life_days}})
          ELSE 1.0
        END) AS weight,
    BOOL_OR(e.event_type = 'purchase') AS purchased,
    SUM({{event_weight}}
      * CASE WHEN {{half_life_days}} > 0
          THEN power(0.5, (extract(epoch FROM TIMESTAMP '{{holdout_start}}') - extract(epoch FROM e.ts)) / 86400.0 / {{half_life_days}})
          ELSE 1.0
        END) FILTER (WHERE e.ts < TIMESTAMP '{{holdout_start}}') AS train_weight,
    BOOL_OR(e.event_type = 'purchase') FILTER (WHERE e.ts < TIMESTAMP '{{holdout_start}}') AS train_purchased,
    BOOL_OR(e.ts >= TIMESTAMP '{{holdout_start}}') AS in_holdout
  FROM events e
  JOIN user_index u ON e.customer_id = u.customer_id
  JOIN item_index i ON e.item_id = i.item_id
  WHERE e.ts < TIMESTAMP '{{interactions_end}}'
    AND e.event_type IN {{interaction_events}}
  GROUP BY u.user_idx, i.item_idx
)
