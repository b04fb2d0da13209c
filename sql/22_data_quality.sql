-- input: event_drops                                  output: data_quality
--
-- The data-quality counters of the run, published for analysts: raw rows per source and reason
-- (kept, duplicate, crawler, outside_window, future_dated, error_status, invalid_value,
-- anonymous, unknown_customer), adding up to the rows read for the window. One partition per
-- run date; data_quality_history shows the trend.
SELECT source, reason, rows
FROM event_drops
