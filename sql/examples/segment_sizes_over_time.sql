-- Segment sizes and shares for every published date (the segments' history).
-- Run: persona sql --output OUTPUT "$(cat sql/examples/segment_sizes_over_time.sql)"
SELECT dt, segment_id, segment_label, size, ROUND(share, 4) AS share
FROM segments_history
ORDER BY dt, segment_id;
