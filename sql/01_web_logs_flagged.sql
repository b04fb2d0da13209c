-- input: web_logs (raw export, partitioned by dt)     output: web_logs_flagged
--
-- Every distinct raw web-log row of the window's partitions, with the number of copies the
-- export holds, its parsed URL and a drop_reason (NULL when the row is kept). 06_event_drops
-- counts rows per reason (extra copies of kept rows as 'duplicate'), so nothing is dropped
-- silently. A duplicate is a row equal to another in every column. Adapt the column names here
-- when your export differs. The raw url and status are not kept: later stages use only what is
-- parsed from them here, and writing the URLs again cost a tenth of this stage.
--
-- The rows are grouped by the columns kept and row_digest() of the others (a 128-bit hash of
-- their values, nulls included) rather than by every column: the hash table then holds 16 bytes
-- of each row's user agent, referrer, URL and the rest instead of the strings themselves, which
-- halved this stage's peak memory and time on 11.9M rows. Rows equal in every column still
-- group together; two different rows meet only if their digests collide (about 2^-128).
--
-- An item id that is an e-mail or IP address, or the row's own cookie id, is personal data:
-- the row is dropped as 'invalid_value' (and counted), never published as an item.
--
-- Parameters: {{first_dt}}..{{last_dt}} partitions to read; events must fall in
-- [{{window_start}}, {{window_end}}).
SELECT
  ts,
  cookie_id,
  customer_id,
  COUNT(*) AS copies,
  page_type,
  item_id,
  drop_reason
FROM (
  SELECT
    ts,
    cookie_id,
    customer_id,
    url_page_type(url) AS page_type,
    url_item_id(url)   AS item_id,
    CASE
      WHEN ts IS NULL OR url IS NULL               THEN 'invalid_value'
      -- Personal data where an item id belongs (a hostile or broken URL): never an item.
      WHEN looks_like_personal_data(url_item_id(url))
        OR url_item_id(url) = cookie_id            THEN 'invalid_value'
      WHEN is_crawler(user_agent)                  THEN 'crawler'
      WHEN ts >= TIMESTAMP '{{window_end}}'        THEN 'future_dated'
      WHEN ts <  TIMESTAMP '{{window_start}}'      THEN 'outside_window'
      WHEN status >= 400                           THEN 'error_status'
    END AS drop_reason,
    row_digest(method, url, status, bytes, referrer, user_agent, ip) AS rest
  FROM web_logs
  WHERE dt BETWEEN '{{first_dt}}' AND '{{last_dt}}'
)
GROUP BY ts, cookie_id, customer_id, page_type, item_id, drop_reason, rest
