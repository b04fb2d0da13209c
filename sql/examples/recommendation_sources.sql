-- How recommendations were made on every date: the model (als) or the popularity fallback,
-- and how many customers got any.
SELECT dt, source, COUNT(*) AS recommendations, COUNT(DISTINCT customer_id) AS customers
FROM recommendations_history
GROUP BY dt, source
ORDER BY dt, source;
