-- input: interactions, item_index                     output: popular_items
--
-- The most popular catalog items by total interaction weight: the last-resort fallback of
-- 22_recommendations.sql (a customer the model does not know gets their segment's favourites
-- first).
SELECT item_idx, item_id, popularity, CAST(place AS INT) AS place
FROM (
  SELECT
    x.item_idx,
    i.item_id,
    SUM(x.weight) AS popularity,
    ROW_NUMBER() OVER (ORDER BY SUM(x.weight) DESC, i.item_id) AS place
  FROM interactions x
  JOIN item_index i ON x.item_idx = i.item_idx
  WHERE i.in_catalog
  GROUP BY x.item_idx, i.item_id
)
WHERE place <= {{top_n}}
