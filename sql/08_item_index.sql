-- input: events, items                                output: item_index
--
-- Dense integer ids (0..n) for every item that customers interacted with, assigned once per run
-- (ordered by item_id, so the same data gives the same ids). in_catalog marks items of the
-- catalog; only those are recommended.
SELECT
  item_id,
  CAST(ROW_NUMBER() OVER (ORDER BY item_id) - 1 AS INT) AS item_idx,
  in_catalog
FROM (
  SELECT e.item_id, BOOL_OR(i.item_id IS NOT NULL) AS in_catalog
  FROM events e
  LEFT JOIN items i ON e.item_id = i.item_id
  WHERE e.item_id IS NOT NULL AND e.event_type IN {{interaction_events}}
  GROUP BY e.item_id
)
