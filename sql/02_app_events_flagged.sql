-- input: app_events (raw export, partitioned by dt)   output: app_events_flagged
--
-- Every distinct raw app event of the window's partitions, with its number of copies and a
-- drop_reason (NULL when kept): missing customer or time, an unknown event type, a negative
-- price, an item id that is an e-mail or IP address (personal data, never an item), or outside the window (late or future-dated). Extra copies of a kept event are counted
-- as 'duplicate' by 06_event_drops.
SELECT
  event_time AS ts,
  customer_id,
  platform,
  event_type,
  item_id,
  quantity,
  price,
  copies,
  CASE
    WHEN event_time IS NULL OR customer_id IS NULL                                   THEN 'invalid_value'
    WHEN event_type NOT IN ('view', 'click', 'add_to_cart', 'purchase', 'search', 'app_open')
      OR event_type IS NULL                                                          THEN 'invalid_value'
    WHEN price < 0 OR quantity < 0                                                   THEN 'invalid_value'
    WHEN looks_like_personal_data(item_id)                                           THEN 'invalid_value'
    WHEN event_time >= TIMESTAMP '{{window_end}}'                                    THEN 'future_dated'
    WHEN event_time <  TIMESTAMP '{{window_start}}'                                  THEN 'outside_window'
  END AS drop_reason
FROM (
  SELECT event_time, customer_id, device_id, platform, event_type, item_id, quantity, price, COUNT(*) AS copies
  FROM app_events
  WHERE dt BETWEEN '{{first_dt}}' AND '{{last_dt}}'
  GROUP BY event_time, customer_id, device_id, platform, event_type, item_id, quantity, price
)
