-- input: user_profiles, segment_labels                output: segments
--
-- One row per segment: size and share of customers, its readable label, the features that
-- most distinguish it (in standard deviations from the population; overall and the strongest
-- of each group of features), how much to trust it (its members' mean silhouette, and how
-- reliably fits on two halves of a sample find it again), and its centroid: the mean
-- of each clustering feature over its members in original units (`centroid`, in the order of
-- `feature_names`) and in standard deviations (`centroid_z`); then the segment's means of the
-- main profile features in their original units (rounded to 6 decimals, so reruns are
-- byte-identical), clustering features or not.
SELECT
  p.segment_id,
  l.segment_label,
  COUNT(*)                                         AS size,
  COUNT(*) * 1.0 / SUM(COUNT(*)) OVER ()           AS share,
  l.distinguishing_features,
  l.features_by_group,
  l.silhouette,
  l.stability,
  l.feature_names,
  l.centroid,
  l.centroid_z,
  ROUND(AVG(p.recency_days), 6) AS avg_recency_days,
  ROUND(AVG(p.sessions), 6) AS avg_sessions,
  ROUND(AVG(p.purchases), 6) AS avg_purchases,
  ROUND(AVG(p.monetary), 6) AS avg_monetary,
  ROUND(AVG(p.avg_order_value), 6) AS avg_order_value,
  ROUND(AVG(p.conversion_rate), 6) AS avg_conversion_rate,
  ROUND(AVG(p.share_web), 6) AS avg_share_web,
  ROUND(AVG(p.age), 6) AS avg_age,
  ROUND(AVG(p.annual_income), 6) AS avg_annual_income
FROM user_profiles p
JOIN segment_labels l ON p.segment_id = l.segment_id
GROUP BY p.segment_id, l.segment_label, l.distinguishing_features, l.features_by_group,
  l.silhouette, l.stability, l.feature_names, l.centroid, l.centroid_z
