-- input: user_profiles, segment_labels                output: segments
--
-- One row per segment: size and share of customers, its readable label and distinguishing
-- features (in standard deviations from the population), and the segment's means of the main
-- features in their original units.
SELECT
  p.segment_id,
  l.segment_label,
  COUNT(*)                                         AS size,
  COUNT(*) * 1.0 / SUM(COUNT(*)) OVER ()           AS share,
  l.distinguishing_features,
  l.feature_names,
  l.centroid_z,
  AVG(p.recency_days)                              AS avg_recency_days,
  AVG(p.sessions)                                  AS avg_sessions,
  AVG(p.purchases)                                 AS avg_purchases,
  AVG(p.monetary)                                  AS avg_monetary,
  AVG(p.avg_order_value)                           AS avg_order_value,
  AVG(p.conversion_rate)                           AS avg_conversion_rate,
  AVG(p.share_web)                                 AS avg_share_web,
  AVG(p.age)                                       AS avg_age,
  AVG(p.annual_income)                             AS avg_annual_income
FROM user_profiles p
JOIN segment_labels l ON p.segment_id = l.segment_id
GROUP BY p.segment_id, l.segment_label, l.distinguishing_features, l.feature_names, l.centroid_z
