-- input: user_features, segment_assignments, segment_labels      output: user_profiles
--
-- The published profile of every customer: their segment, its label, the distance to the
-- segment's centroid (in standardised feature space), readable tags, and the profile features.
-- Tags (NULL when the customer has no event in the window to tell from):
--   lifecycle          'dormant' (no event in the window), 'new' (signed up within the
--                      window), 'active'; 'unknown' for customers missing from the CRM export
--                      who have events
--   price_band         'budget' (looks at and buys items at least 15% below their category's
--                      median price, on average), 'premium' (20% above), otherwise 'mid'
--   active_hours       the part of the day with most of their events: 'night' (0-6 UTC),
--                      'morning' (6-12), 'afternoon' (12-18), 'evening' (18-24)
--   preferred_channel  'app' (at least 70% of events in the app), 'web' (at least 70% on the
--                      web), otherwise 'both'
--   preferred_device   'ios', 'android' or 'web': the platform with most events
-- `interests` (their main categories) and `top_brands` come with the features.
SELECT
  f.customer_id,
  a.segment_id,
  l.segment_label,
  a.distance_to_centroid,
  CASE
    WHEN f.last_seen IS NULL THEN 'dormant'
    WHEN NOT f.in_crm THEN 'unknown'
    WHEN f.tenure_days < (date_part('epoch', TIMESTAMP '{{window_end}}')
                          - date_part('epoch', TIMESTAMP '{{window_start}}')) / 86400.0
      THEN 'new'
    ELSE 'active'
  END AS lifecycle,
  CASE
    WHEN f.price_index IS NULL THEN NULL
    WHEN f.price_index < 0.85 THEN 'budget'
    WHEN f.price_index > 1.2 THEN 'premium'
    ELSE 'mid'
  END AS price_band,
  CASE
    WHEN f.share_evening IS NULL THEN NULL
    WHEN f.share_evening >= greatest(f.share_night, f.share_morning, f.share_afternoon) THEN 'evening'
    WHEN f.share_afternoon >= greatest(f.share_night, f.share_morning) THEN 'afternoon'
    WHEN f.share_morning >= f.share_night THEN 'morning'
    ELSE 'night'
  END AS active_hours,
  CASE
    WHEN f.share_web IS NULL THEN NULL
    WHEN f.share_web <= 0.3 THEN 'app'
    WHEN f.share_web >= 0.7 THEN 'web'
    ELSE 'both'
  END AS preferred_channel,
  CASE
    WHEN f.share_web IS NULL THEN NULL
    WHEN f.share_web >= greatest(f.share_ios, f.share_android) THEN 'web'
    WHEN f.share_ios >= f.share_android THEN 'ios'
    ELSE 'android'
  END AS preferred_device,
  f.* EXCLUDE (customer_id)
FROM user_features f
JOIN segment_assignments a ON f.customer_id = a.customer_id
JOIN segment_labels l ON a.segment_id = l.segment_id
