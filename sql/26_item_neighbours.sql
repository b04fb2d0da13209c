-- input: item_neighbour_rows, item_index                output: item_neighbours
--
-- The item-to-item model's neighbours by item id: for every catalog item, its most similar
-- catalog items by co-interaction over the window ("customers who interacted with this also
-- interacted with"; sql/14_item_neighbour_rows.sql says how similarity is measured), best first.
-- Unlike similar_items (from the ALS factors), a neighbour here shares customers with the
-- item: the pair is explainable by the customers both have.
SELECT
  a.item_id,
  CAST(ROW_NUMBER() OVER (PARTITION BY n.item_idx ORDER BY n.rank) AS INT) AS rank,
  b.item_id AS neighbour_id,
  n.similarity
FROM item_neighbour_rows n
JOIN item_index a ON n.item_idx = a.item_idx AND a.in_catalog
JOIN item_index b ON n.neighbour_idx = b.item_idx AND b.in_catalog
