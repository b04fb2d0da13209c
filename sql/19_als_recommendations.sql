-- input: user_factor_rows, interactions               output: als_recommendations
--
-- Top-N items per customer under the fitted ALS model. als_top_n scores every catalog item
-- against the customer's factors (the item factors travel inside the function) and skips the
-- excluded items: {{exclude_rule}} (purchased: items bought in the window; seen: every item
-- interacted with; none).
WITH excluded AS (
  SELECT user_idx, array_agg(item_idx) AS items
  FROM interactions
  WHERE {{exclude_rule}}
  GROUP BY user_idx
),
ranked AS (
  SELECT f.user_idx, unnest(als_top_n(f.factors, x.items)) AS rec
  FROM user_factor_rows f
  LEFT JOIN excluded x ON f.user_idx = x.user_idx
)
SELECT
  user_idx,
  rec['rank']     AS rank,
  rec['item_idx'] AS item_idx,
  rec['score']    AS score
FROM ranked
