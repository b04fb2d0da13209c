-- input: event_drops                                  output: data_quality
--
-- The data-quality counters of the run, published for analysts: raw rows per source, reason
-- (kept, duplicate, crawler, outside_window, future_dated, error_status, invalid_value,
-- anonymous, unknown_customer) and event day (NULL for rows without a usable time), adding up
-- to the rows read for the window; and, for crm_customers, opt_in_conflict (customers whose
-- tied CRM rows disagree on the opt-in: not opted in). One partition per run date; data_quality_history shows how
-- the counts of the same days changed from night to night (late data, re-exports).
SELECT source, reason, day AS event_date, rows
FROM event_drops
