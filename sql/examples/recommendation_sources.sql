-- How recommendations were made on every date: the model (als), or for customers it does not
-- know well yet their segment's favourites (segment_popular) and the overall favourites
-- (popular); and how many customers got each.
SELECT dt, source, COUNT(*) AS recommendations, COUNT(DISTINCT customer_id) AS customers
FROM recommendations_history
GROUP BY dt, source
ORDER BY dt, source;
