"""Scores a night against the generator's hidden truth, beside its peers on the same data.

  python truth_score.py --output ROOT --date D --truth INPUT/_truth --split DIR   # one JSON line

Segments: the adjusted Rand index and NMI of the published `user_profiles.segment_id` against
each customer's hidden type (`_truth/customers`), and the same for a plain scikit-learn
pipeline (StandardScaler + KMeans, k-means++, n_init 4, Persona's k) on several feature sets
taken from Persona's published `user_features`:

  persona       the features the night clustered on (its manifest), prepared as Persona does
  behaviour     recency, frequency, money, channel and category focus (Persona's old default)
  interests     behaviour plus the interest_<category> shares, day parts and price index
  crm           behaviour plus age, tenure, income and one-hot loyalty tier, gender, country
  all           everything above
  every_group   behaviour, channel (platform shares, day parts, weekend), taste (interest
                shares, price index) and CRM
  every_group_blocks  the same groups, each standardised and scaled by 1/sqrt(its width), so
                that every group weighs the same (block weighting)

With --segments-only (scripts/bench-segments.sh) only the segments are scored.

Recommendations: recall@10 and NDCG@10 of the published `recommendations` against the items
each customer interacts with in the hidden week after the window (`_truth/next_week`), less
what they bought in the window (neither side recommends it), over the customers who have
recommendations and a next week; beside `implicit`'s ALS trained on the night's own
interaction matrix (`persona evaluate --export-split DIR` writes it) with the night's
hyperparameters, scored the same way, and overall popularity.
"""

import argparse
import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

BEHAVIOUR = [
    "recency_days", "sessions", "active_days", "purchases", "monetary", "avg_order_value",
    "conversion_rate", "web_views", "app_views", "share_web", "categories_seen",
    "top_category_share",
]
LOG = {"sessions", "active_days", "purchases", "monetary", "avg_order_value", "web_views",
       "app_views", "events"}
CRM_NUMERIC = ["age", "tenure_days", "annual_income"]
CRM_CATEGORICAL = ["loyalty_tier", "gender", "country"]
CHANNEL = ["share_ios", "share_android", "share_web", "share_night", "share_morning",
           "share_afternoon", "share_evening", "share_weekend"]
K_TOP = 10


def published(root, table, date):
    """The folder of `table` in the night of `date`, as its manifest names it."""
    with open(os.path.join(root, "_runs", f"dt={date}", "manifest.json")) as f:
        folders = json.load(f).get("published")
    # Nights published before run folders (no "published" map) have the files in dt=<date>/.
    return os.path.join(root, folders[table] if folders else os.path.join(table, f"dt={date}"))


def read(root, table, date):
    return pq.read_table(published(root, table, date)).to_pandas()


def blocks(features, groups, log=LOG):
    """Every group's columns standardised, then scaled by 1/sqrt(the group's width), so that
    each group weighs the same in the distance however many columns it has (block weighting)."""
    parts = []
    for numeric, categorical in groups:
        x = matrix(features, [c for c in numeric if c in features.columns], categorical, log)
        sd = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        parts.append(x / np.sqrt(x.shape[1]))
    return np.column_stack(parts)


def matrix(features, numeric, categorical=(), log=LOG):
    """Persona's preparation: ln(1 + x) for heavy tails, nulls to the mean; one-hot columns for
    categories (a missing value is a category of its own). Scaling is the pipeline's."""
    columns = []
    for name in numeric:
        if name not in features.columns and "=" in name:
            # A one-hot column as the manifest names it ("loyalty_tier=gold"): 1 where the
            # category is that value.
            column, value = name.split("=", 1)
            columns.append((features[column].fillna("(none)").astype(str) == value).to_numpy(dtype=float))
            continue
        v = features[name].to_numpy(dtype=float, na_value=np.nan)
        if name in log:
            v = np.log1p(np.maximum(v, 0.0))
        mean = np.nanmean(v) if np.isfinite(v).any() else 0.0
        columns.append(np.where(np.isnan(v), mean, v))
    for name in categorical:
        dummies = pd.get_dummies(features[name].fillna("(none)"), dtype=float)
        columns.extend(dummies[c].to_numpy() for c in dummies.columns)
    return np.column_stack(columns)


def segment_scores(output, date, truth, manifest):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    profiles = read(output, "user_profiles", date)[["customer_id", "segment_id"]]
    features = read(output, "user_features", date)
    types = pq.read_table(os.path.join(truth, "customers")).to_pandas()[["customer_id", "customer_type"]]
    features = features.merge(types, on="customer_id")
    joined = profiles.merge(types, on="customer_id")
    k = int(manifest["segments"]["k"])
    scores = {
        "customers": int(len(joined)),
        "k": k,
        "persona": {
            "ari": adjusted_rand_score(joined.customer_type, joined.segment_id),
            "nmi": normalized_mutual_info_score(joined.customer_type, joined.segment_id),
        },
    }
    interests = [c for c in features.columns if c.startswith("interest_")]
    extra = ["share_night", "share_morning", "share_afternoon", "share_evening", "share_weekend",
             "price_index"]
    used = manifest["segments"].get("features") or manifest["config"]["segments"]["features"]
    # One-hot indicators are named `column=value`: cluster on their column, one-hot.
    used_categorical = sorted({f.split("=", 1)[0] for f in used if "=" in f})
    used = [f for f in used if "=" not in f]
    sets = {
        "persona": (used, used_categorical),
        "behaviour": (BEHAVIOUR, []),
        "interests": (BEHAVIOUR + interests + extra, []),
        "crm": (BEHAVIOUR + CRM_NUMERIC, CRM_CATEGORICAL),
        "all": (BEHAVIOUR + interests + extra + CRM_NUMERIC, CRM_CATEGORICAL),
        "every_group": (BEHAVIOUR + CHANNEL + interests + ["price_index"] + CRM_NUMERIC,
                        CRM_CATEGORICAL),
        # One group alone: the best set for a member whose types differ in that group.
        "channel_only": (CHANNEL, []),
        "taste_only": (interests + ["price_index"], []),
        "crm_only": (CRM_NUMERIC, CRM_CATEGORICAL),
    }
    # The same four groups, each weighing the same (a candidate default).
    groups = [(BEHAVIOUR, []), (CHANNEL, []), (interests + ["price_index"], []),
              (CRM_NUMERIC, CRM_CATEGORICAL)]
    log = set(manifest["segments"].get("log_features") or LOG)
    scores["sklearn"] = {}
    with threadpool_limits(2):
        for name, (numeric, categorical) in list(sets.items()) + [("every_group_blocks", (None, None))]:
            kmeans = KMeans(n_clusters=k, init="k-means++", n_init=4, random_state=0)
            if numeric is None:
                # Already standardised per column and weighted per group: no second scaler.
                x = blocks(features, groups, log)
                pipeline = make_pipeline(kmeans)
            else:
                x = matrix(features, [c for c in numeric if c in features.columns], categorical, log)
                pipeline = make_pipeline(StandardScaler(), kmeans)
            labels = pipeline.fit_predict(x)
            scores["sklearn"][name] = {
                "dims": int(x.shape[1]),
                "ari": adjusted_rand_score(features.customer_type, labels),
                "nmi": normalized_mutual_info_score(features.customer_type, labels),
            }
    return scores


def ranking_scores(recommended, relevant):
    """Mean recall@10 and NDCG@10 over the customers in `relevant` (dict: customer -> set)."""
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, K_TOP + 2)))
    recall = ndcg = 0.0
    for customer, items in relevant.items():
        top = recommended.get(customer, [])[:K_TOP]
        gains = [1.0 / np.log2(i + 2) for i, item in enumerate(top) if item in items]
        recall += len(gains) / len(items)
        ndcg += sum(gains) / ideal[min(len(items), K_TOP) - 1]
    n = max(len(relevant), 1)
    return {"customers": len(relevant), "recall_at_10": recall / n, "ndcg_at_10": ndcg / n}


def recommendation_scores(output, date, truth, split, manifest):
    recs = read(output, "recommendations", date).sort_values(["customer_id", "rank"])
    recommended = recs.groupby("customer_id")["item_id"].apply(list).to_dict()
    week = pq.read_table(os.path.join(truth, "next_week")).to_pandas()
    users = pq.read_table(os.path.join(split, "users.parquet")).to_pandas()
    items = pq.read_table(os.path.join(split, "items.parquet")).to_pandas()
    inter = pq.read_table(os.path.join(split, "interactions.parquet")).to_pandas()
    inter = inter.merge(users, on="user_idx").merge(items, on="item_idx")
    bought = set(zip(inter.customer_id[inter.purchased], inter.item_id[inter.purchased]))
    catalog = set(items.item_id[items.in_catalog])
    relevant = {}
    for customer, item in zip(week.customer_id, week.item_id):
        if customer in recommended and item in catalog and (customer, item) not in bought:
            relevant.setdefault(customer, set()).add(item)
    result = {"persona": ranking_scores(recommended, relevant)}
    by_source = recs.groupby("source")["customer_id"].nunique().to_dict()
    result["persona"]["customers_by_source"] = {k: int(v) for k, v in by_source.items()}

    popularity = inter[inter.in_catalog].groupby("item_id")["weight"].sum().sort_values(ascending=False)
    popular = list(popularity.index[: K_TOP + 50])
    own = inter[inter.purchased].groupby("customer_id")["item_id"].apply(set).to_dict()
    pop_recs = {c: [i for i in popular if i not in own.get(c, set())][:K_TOP] for c in relevant}
    result["popular"] = ranking_scores(pop_recs, relevant)

    try:
        result["implicit"] = implicit_scores(inter, users, items, relevant, own, manifest)
    except ImportError:
        pass
    return result


def implicit_scores(inter, users, items, relevant, own, manifest):
    import implicit
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    cfg = manifest["config"]["recommendations"]
    n_users, n_items = int(users.user_idx.max()) + 1, int(items.item_idx.max()) + 1
    confidence = 1.0 + cfg["alpha"] * inter.weight.to_numpy(dtype=np.float32)
    m = sp.csr_matrix((confidence, (inter.user_idx, inter.item_idx)), shape=(n_users, n_items))
    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=cfg["rank"], regularization=cfg["lambda"], alpha=1.0,
        iterations=cfg["iterations"], use_cg=True, calculate_training_loss=False,
        random_state=0, num_threads=2,
    )
    with threadpool_limits(1):
        model.fit(m, show_progress=False)
    user_of = dict(zip(users.customer_id, users.user_idx))
    item_id = items.set_index("item_idx").item_id.to_dict()
    item_idx = dict(zip(items.item_id, items.item_idx))
    allowed = np.zeros(n_items, dtype=bool)
    allowed[items.item_idx[items.in_catalog].to_numpy()] = True
    recs = {}
    for customer in relevant:
        u = user_of.get(customer)
        if u is None:
            continue
        scores = model.item_factors @ model.user_factors[u]
        scores[~allowed] = -np.inf
        for item in own.get(customer, ()):
            scores[item_idx[item]] = -np.inf
        top = np.argsort(-scores)[:K_TOP]
        recs[customer] = [item_id[int(i)] for i in top]
    return ranking_scores(recs, relevant)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--split", help="the evaluation's split (not needed with --segments-only)")
    parser.add_argument("--segments-only", action="store_true")
    args = parser.parse_args()
    manifest = json.load(open(os.path.join(args.output, "_runs", f"dt={args.date}", "manifest.json")))
    scores = {"segments": segment_scores(args.output, args.date, args.truth, manifest)}
    if not args.segments_only:
        scores["recommendations"] = recommendation_scores(
            args.output, args.date, args.truth, args.split, manifest)
    print(json.dumps(scores))


if __name__ == "__main__":
    main()
