-- input: user_features, segment_assignments, segment_labels      output: user_profiles
--
-- The published profile: each customer's segment, its label, the distance to the segment's
-- centroid (in standardised feature space) and the profile features.
SELECT
  f.customer_id,
  a.segment_id,
  l.segment_label,
  a.distance_to_centroid,
  f.* EXCLUDE (customer_id)
FROM user_features f
JOIN segment_assignments a ON f.customer_id = a.customer_id
JOIN segment_labels l ON a.segment_id = l.segment_id
