-- input: web_logs (raw export, partitioned by dt)     output: web_logs_flagged
--
-- Every raw web-log row of the window's partitions, once, with its parsed URL and a drop_reason
-- (NULL when the row is kept). Counting rows per drop_reason gives the data-quality counters, so
-- nothing is dropped silently. A duplicate is a row equal to an earlier one in every column. Adapt the column names here when your export differs.
--
-- Parameters: {{first_dt}}..{{last_dt}} partitions to read; events must fall in
-- [{{window_start}}, {{window_end}}).
SELECT
  ts,
  cookie_id,
  customer_id,
  url,
  status,
  url_page_type(url) AS page_type,
  url_item_id(url)   AS item_id,
  CASE
    WHEN ts IS NULL OR url IS NULL               THEN 'invalid_value'
    WHEN is_crawler(user_agent)                  THEN 'crawler'
    WHEN ts >= TIMESTAMP '{{window_end}}'        THEN 'future_dated'
    WHEN ts <  TIMESTAMP '{{window_start}}'      THEN 'outside_window'
    WHEN status >= 400                           THEN 'error_status'
    WHEN copy_number > 1                         THEN 'duplicate'
  END AS drop_reason
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY ts, cookie_id, customer_id, method, url, status, bytes, referrer, user_agent, ip ORDER BY dt
    ) AS copy_number
  FROM web_logs
  WHERE dt BETWEEN '{{first_dt}}' AND '{{last_dt}}'
)
