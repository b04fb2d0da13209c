"""The whole-night peer of `persona run`: the same job written the way a competent data
scientist would on one machine, with DuckDB (staging and features), scikit-learn (K-Means) and
`implicit` (ALS), for scripts/bench.sh to time beside Persona on the same input and cores.

  python night_peer.py --input INPUT --output OUT --date D [--threads 2]

It does what the night does, in the same order: dedup the raw rows, drop crawlers, error
statuses and rows outside the 28-day window, stitch anonymous web rows to customers by cookie,
sessions (30-minute gap) and per-customer features for every CRM customer, K-Means (standard
scaler, k-means++, k = 6, 8 starts) on the same features as Persona's default, implicit ALS
(rank 32, 10 iterations, alpha 10, lambda 0.1) on the same interaction weights, top 10 per
opted-in customer without what they bought, popularity for the rest, and the holdout evaluation
(a second ALS fit on all but the last 7 days, NDCG@10 against the items each customer touched
in them and never before, as Persona's evaluation scores). Writes user_features,
user_profiles and recommendations as Parquet into OUT and prints one JSON line: seconds per
stage and the evaluation's NDCG@10.
"""

import argparse
import json
import os
import time

import duckdb
import numpy as np
import scipy.sparse as sp

WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
BOTS = ["bot", "crawl", "spider", "slurp", "curl/", "wget/", "python-requests", "python-urllib",
        "headlesschrome", "facebookexternalhit", "bingpreview", "go-http-client", "java/",
        "okhttp", "scrapy", "httpclient", "phantomjs", "pingdom", "uptime", "monitor"]
FEATURES = ["recency_days", "sessions", "active_days", "purchases", "avg_order_value",
            "conversion_rate", "web_views", "app_views", "share_web", "categories_seen",
            "top_category_share", "age", "tenure_days", "annual_income"]
LOG = {"sessions", "active_days", "purchases", "avg_order_value", "web_views", "app_views"}


def staging(con, root, date):
    """Clean events of the window (web rows stitched to customers), as the DuckDB view `events`."""
    con.execute(f"""
        CREATE VIEW params AS SELECT DATE '{date}' - INTERVAL 27 DAY AS first_day,
                                     DATE '{date}' + INTERVAL 1 DAY AS window_end""")
    bots = " OR ".join(f"contains(lower(user_agent), '{b}')" for b in BOTS)
    con.execute(f"""
        CREATE TABLE web AS
        SELECT DISTINCT ts, cookie_id, customer_id, url
        FROM read_parquet('{root}/web_logs/*/*.parquet', hive_partitioning = true), params
        WHERE dt BETWEEN CAST(first_day AS DATE) AND DATE '{date}'
          AND ts >= first_day AND ts < window_end AND status < 400 AND url IS NOT NULL
          AND user_agent IS NOT NULL AND trim(user_agent) <> '' AND NOT ({bots})""")
    con.execute("""
        CREATE TABLE identity AS
        SELECT cookie_id, arg_max(customer_id, hits) AS customer_id
        FROM (SELECT cookie_id, customer_id, COUNT(*) AS hits FROM web
              WHERE customer_id IS NOT NULL GROUP BY ALL)
        GROUP BY cookie_id""")
    con.execute(f"""
        CREATE TABLE events AS
        SELECT COALESCE(w.customer_id, i.customer_id) AS customer_id, w.ts, 'web' AS platform,
               CASE WHEN w.url LIKE '/product/%' THEN 'view'
                    WHEN w.url LIKE '/cart/add%' THEN 'add_to_cart'
                    WHEN w.url LIKE '/search%' THEN 'search' ELSE 'page_view' END AS event_type,
               CASE WHEN w.url LIKE '/product/%' THEN regexp_extract(w.url, '^/product/([^?/]+)', 1)
                    WHEN w.url LIKE '/cart/add%' THEN regexp_extract(w.url, 'item=([^&]+)', 1)
               END AS item_id,
               CAST(NULL AS DOUBLE) AS price, CAST(NULL AS INT) AS quantity
        FROM web w LEFT JOIN identity i ON w.customer_id IS NULL AND w.cookie_id = i.cookie_id
        WHERE COALESCE(w.customer_id, i.customer_id) IS NOT NULL
        UNION ALL
        SELECT DISTINCT customer_id, event_time, platform, event_type, item_id, price, quantity
        FROM read_parquet('{root}/app_events/*/*.parquet', hive_partitioning = true), params
        WHERE dt BETWEEN CAST(first_day AS DATE) AND DATE '{date}'
          AND event_time >= first_day AND event_time < window_end AND customer_id IS NOT NULL
          AND event_type IN ('view', 'click', 'add_to_cart', 'purchase', 'search', 'app_open')""")
    con.execute(f"""
        CREATE TABLE customers AS
        SELECT customer_id,
               CASE WHEN date_diff('year', birth_date, DATE '{date}') BETWEEN 14 AND 110
                    THEN date_diff('year', birth_date, DATE '{date}') END AS age,
               date_diff('day', signup_date, DATE '{date}') AS tenure_days,
               CASE WHEN annual_income >= 0 THEN annual_income END AS annual_income,
               COALESCE(marketing_opt_in, false) AS marketing_opt_in
        FROM (SELECT *, row_number() OVER (PARTITION BY customer_id
                                           ORDER BY signup_date DESC, email DESC) AS version
              FROM read_parquet('{root}/crm_customers/*.parquet') WHERE customer_id IS NOT NULL)
        WHERE version = 1""")
    con.execute(f"CREATE TABLE items AS SELECT item_id, any_value(category) AS category "
                f"FROM read_parquet('{root}/items/*.parquet') GROUP BY item_id")


def features(con, date):
    """Per-customer features for every CRM customer (and every active one), as `features`."""
    con.execute(f"""
        CREATE TABLE features AS
        WITH s AS (
          SELECT customer_id, ts, platform, event_type, item_id, price, quantity,
                 CASE WHEN ts - lag(ts) OVER (PARTITION BY customer_id ORDER BY ts)
                           <= INTERVAL 30 MINUTE THEN 0 ELSE 1 END AS new_session
          FROM events),
        cat AS (
          SELECT e.customer_id, i.category, COUNT(*) AS n FROM events e JOIN items i USING (item_id)
          GROUP BY ALL),
        cats AS (
          SELECT customer_id, COUNT(*) AS categories_seen, MAX(n) * 1.0 / SUM(n) AS top_category_share
          FROM cat GROUP BY customer_id),
        a AS (
          SELECT customer_id,
                 date_diff('second', MAX(ts), DATE '{date}' + INTERVAL 1 DAY) / 86400.0 AS recency_days,
                 SUM(new_session) AS sessions,
                 COUNT(DISTINCT CAST(ts AS DATE)) AS active_days,
                 COUNT(*) FILTER (WHERE event_type = 'purchase') AS purchases,
                 COALESCE(SUM(price * COALESCE(quantity, 1)) FILTER (WHERE event_type = 'purchase'), 0) AS monetary,
                 COUNT(*) FILTER (WHERE event_type = 'view' AND platform = 'web') AS web_views,
                 COUNT(*) FILTER (WHERE event_type = 'view' AND platform <> 'web') AS app_views,
                 COUNT(*) FILTER (WHERE platform = 'web') * 1.0 / COUNT(*) AS share_web
          FROM s GROUP BY customer_id)
        SELECT COALESCE(c.customer_id, a.customer_id) AS customer_id,
               COALESCE(a.recency_days, 28.0) AS recency_days,
               COALESCE(a.sessions, 0) AS sessions, COALESCE(a.active_days, 0) AS active_days,
               COALESCE(a.purchases, 0) AS purchases, COALESCE(a.monetary, 0) AS monetary,
               a.monetary / NULLIF(a.purchases, 0) AS avg_order_value,
               a.purchases * 1.0 / NULLIF(a.web_views + a.app_views, 0) AS conversion_rate,
               COALESCE(a.web_views, 0) AS web_views, COALESCE(a.app_views, 0) AS app_views,
               a.share_web, COALESCE(t.categories_seen, 0) AS categories_seen, t.top_category_share,
               c.age, c.tenure_days, c.annual_income, COALESCE(c.marketing_opt_in, false) AS marketing_opt_in
        FROM customers c FULL OUTER JOIN a ON c.customer_id = a.customer_id
        LEFT JOIN cats t ON t.customer_id = COALESCE(c.customer_id, a.customer_id)""")


def segments(con, out, threads):
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    frame = con.execute("SELECT * FROM features").df()
    columns = []
    for name in FEATURES:
        v = frame[name].to_numpy(dtype=float, na_value=np.nan)
        if name in LOG:
            v = np.log1p(np.maximum(v, 0.0))
        columns.append(np.where(np.isnan(v), np.nanmean(v), v))
    x = StandardScaler().fit_transform(np.column_stack(columns))
    with threadpool_limits(threads):
        labels = KMeans(6, n_init=8, random_state=0).fit_predict(x)
    frame["segment_id"] = labels
    con.register("profiles_frame", frame[["customer_id", "segment_id", "marketing_opt_in"]])
    con.execute("CREATE TABLE profiles AS SELECT * FROM profiles_frame")
    con.execute(f"COPY features TO '{out}/user_features.parquet' (FORMAT parquet)")
    con.execute(f"COPY profiles TO '{out}/user_profiles.parquet' (FORMAT parquet)")


def interactions(con, before=None):
    """(customer ids, item ids, CSR user × item weights, CSR of purchased pairs): indices made
    by DuckDB (dense ranks), so that no Python code touches the millions of string ids."""
    cut = f"AND ts < TIMESTAMP '{before}'" if before else ""
    weights = " ".join(f"WHEN '{k}' THEN {v}" for k, v in WEIGHTS.items())
    con.execute(f"""
        CREATE OR REPLACE TABLE pairs AS
        SELECT customer_id, item_id, LEAST(SUM(CASE event_type {weights} END), 50.0) AS w,
               bool_or(event_type = 'purchase') AS bought
        FROM events JOIN items USING (item_id)
        WHERE event_type IN ('view', 'click', 'add_to_cart', 'purchase') {cut}
        GROUP BY ALL""")
    con.execute("""
        CREATE OR REPLACE TABLE user_ids AS
        SELECT customer_id, CAST(row_number() OVER (ORDER BY customer_id) - 1 AS INT) AS u
        FROM (SELECT DISTINCT customer_id FROM pairs)""")
    con.execute("""
        CREATE OR REPLACE TABLE item_ids AS
        SELECT item_id, CAST(row_number() OVER (ORDER BY item_id) - 1 AS INT) AS i
        FROM (SELECT DISTINCT item_id FROM pairs)""")
    rows = con.execute("""
        SELECT u, i, w, bought FROM pairs JOIN user_ids USING (customer_id)
        JOIN item_ids USING (item_id)""").fetchnumpy()
    users = con.execute("SELECT customer_id FROM user_ids ORDER BY u").fetchnumpy()["customer_id"]
    items = con.execute("SELECT item_id FROM item_ids ORDER BY i").fetchnumpy()["item_id"]
    u, i = rows["u"], rows["i"]
    matrix = sp.csr_matrix((rows["w"].astype(np.float32), (u, i)), shape=(len(users), len(items)))
    bought = sp.csr_matrix((rows["bought"].astype(np.float32), (u, i)), shape=matrix.shape)
    bought.eliminate_zeros()
    return users, items, matrix, bought


def fit(matrix, threads):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    model = AlternatingLeastSquares(factors=32, regularization=0.1, alpha=10.0, iterations=10,
                                    random_state=7, num_threads=threads)
    with threadpool_limits(threads):
        model.fit(matrix, show_progress=False)
    return model


def recommendations(con, out, threads):
    import pandas as pd

    users, items, matrix, bought = interactions(con)
    model = fit(matrix, threads)
    opted = con.execute("""
        SELECT u FROM user_ids JOIN profiles USING (customer_id) WHERE marketing_opt_in
        ORDER BY u""").fetchnumpy()["u"]
    ids, _ = model.recommend(opted, bought[opted], N=10, filter_already_liked_items=True)
    n = ids.shape[1]
    recs = pd.DataFrame({"customer_id": np.repeat(users[opted], n),
                         "rank": np.tile(np.arange(1, n + 1, dtype=np.int32), len(opted)),
                         "item_id": items[ids.ravel()]})
    con.register("model_recs", recs)
    # Opted-in customers without interactions: the most bought items.
    con.execute(f"""
        COPY (
          SELECT * FROM model_recs
          UNION ALL
          SELECT p.customer_id, CAST(t.rank AS INT) AS rank, t.item_id
          FROM profiles p
          CROSS JOIN (SELECT item_id, row_number() OVER (ORDER BY n DESC, item_id) AS rank
                      FROM (SELECT item_id, COUNT(*) AS n FROM events JOIN items USING (item_id)
                            WHERE event_type = 'purchase' GROUP BY item_id)
                      QUALIFY rank <= 10) t
          WHERE p.marketing_opt_in AND p.customer_id NOT IN (SELECT customer_id FROM user_ids)
        ) TO '{out}/recommendations.parquet' (FORMAT parquet)""")
    return len(recs)


def evaluation(con, date, threads):
    """ALS fitted on all but the last 7 days, NDCG@10 on the items each customer touched in them
    and never before (as Persona's evaluation: what they know is not recommended either)."""
    holdout_start = np.datetime64(date) - np.timedelta64(6, "D")
    users, items, matrix, _ = interactions(con, before=holdout_start)
    model = fit(matrix, threads)
    truth = con.execute(f"""
        SELECT DISTINCT u.u, i.i
        FROM events e JOIN user_ids u USING (customer_id) JOIN item_ids i USING (item_id)
        WHERE e.event_type IN ('view', 'click', 'add_to_cart', 'purchase')
          AND e.ts >= TIMESTAMP '{holdout_start}'
          AND NOT EXISTS (SELECT 1 FROM pairs p
                          WHERE p.customer_id = e.customer_id AND p.item_id = e.item_id)
    """).fetchnumpy()
    rows, counts = np.unique(truth["u"], return_counts=True)
    ids, _ = model.recommend(rows, matrix[rows], N=10, filter_already_liked_items=True)
    codes = truth["u"].astype(np.int64) * len(items) + truth["i"]
    hits = np.isin(rows[:, None].astype(np.int64) * len(items) + ids, codes)
    discount = 1.0 / np.log2(np.arange(2, 12))
    ideal = np.cumsum(discount)[np.minimum(counts, 10) - 1]
    return float(((hits * discount).sum(axis=1) / ideal).mean()) if len(rows) else 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--date", required=True)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    os.makedirs(a.output, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    seconds = {}
    for name, step in [
        ("staging", lambda: staging(con, a.input, a.date)),
        ("features", lambda: features(con, a.date)),
        ("segments", lambda: segments(con, a.output, a.threads)),
        ("recommendations", lambda: recommendations(con, a.output, a.threads)),
        ("evaluation", lambda: evaluation(con, a.date, a.threads)),
    ]:
        t = time.perf_counter()
        result = step()
        seconds[name] = round(time.perf_counter() - t, 2)
        if name == "evaluation":
            seconds["ndcg_at_10"] = round(result, 4)
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()
