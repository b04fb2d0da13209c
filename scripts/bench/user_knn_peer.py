"""Customer-to-customer benchmark peer: scikit-learn's NearestNeighbors(metric="correlation") on the
dense customer x item matrix, and the recall of Persona's pruned neighbours against the exact ones.

  python user_knn_peer.py --dir DIR [--neighbours 50 --k 10 --max-dense-gb 6 --recall-sample 2000]

DIR holds train.parquet (user_idx, item_idx, weight) and holdout.parquet (user_idx, item_idx), as
`persona evaluate --export-split` writes them, and customer_neighbours.parquet (user_idx,
neighbour_idx, similarity): Persona's neighbours of the same training days. Prints one JSON line:
- the peer: the seconds of fit() and kneighbors() for the holdout's customers, then the metrics
  of sql/18_evaluation.sql for its recommendations (each item scored Σ similarity × weight over
  the positive neighbours who have it, Persona's default `weighted_sum`), or why it was skipped
  (the dense matrix would not fit in --max-dense-gb);
- recall: for a sample of customers, the share of each customer's exact top neighbours (Pearson
  over every item, computed sparsely: the same numbers as scikit-learn's) that Persona found,
  the share of the exact neighbours' total similarity that Persona's neighbours add up to, and
  the largest difference between the similarities both report for the pairs both found.
"""

import argparse
import json
import os
import time

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from ranking import Ranking


def load(args):
    train = pq.read_table(os.path.join(args.dir, "train.parquet")).to_pandas()
    holdout = pq.read_table(os.path.join(args.dir, "holdout.parquet")).to_pandas()
    train = train[train.weight > 0]
    items = np.unique(train.item_idx.to_numpy())
    column = {int(i): c for c, i in enumerate(items)}
    users = int(max(train.user_idx.max(), holdout.user_idx.max())) + 1
    x = sp.csr_matrix(
        (
            train.weight.to_numpy().astype(np.float64),
            (train.user_idx.to_numpy(), [column[int(i)] for i in train.item_idx]),
        ),
        shape=(users, len(items)),
    )
    x.sum_duplicates()
    truth = {}
    for u, i in zip(holdout.user_idx, holdout.item_idx):
        c = column.get(int(i))
        if c is None or x[u, c] == 0:
            truth.setdefault(int(u), set()).add(c if c is not None else -1 - int(i))
    has = np.diff(x.indptr) > 0
    asked = np.array(sorted(u for u in truth if has[u]))
    return x, truth, asked


def correlations(x, rows):
    """Exact Pearson correlation of `rows` with every customer, every item a column."""
    n = x.shape[1]
    s = np.asarray(x.sum(axis=1)).ravel()
    q = np.asarray(x.multiply(x).sum(axis=1)).ravel()
    spread = np.sqrt(np.maximum(q - s * s / n, 0.0))
    dots = (x[rows] @ x.T).toarray()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (dots - np.outer(s[rows], s) / n) / np.outer(spread[rows], spread)
    corr[~np.isfinite(corr)] = -np.inf
    corr[np.arange(len(rows)), rows] = -np.inf
    return corr


def metrics(x, truth, asked, neighbours, k):
    """sql/18_evaluation.sql's metrics for the weighted-sum recommendations of `neighbours`
    (a list, per asked customer, of (neighbour, similarity))."""
    scores = Ranking(k)
    for u, found in zip(asked, neighbours):
        votes = {}
        for v, sim in found:
            lo, hi = x.indptr[v], x.indptr[v + 1]
            for c, w in zip(x.indices[lo:hi], x.data[lo:hi]):
                votes[c] = votes.get(c, 0.0) + sim * w
        seen = set(x.indices[x.indptr[u] : x.indptr[u + 1]])
        top = sorted((c for c in votes if c not in seen), key=lambda c: (-votes[c], c))[:k]
        scores.add(top, truth[int(u)])
    return scores.result()


def peer(x, truth, asked, args):
    rows = np.where(np.diff(x.indptr) > 0)[0]
    gb = len(rows) * x.shape[1] * 8 / 1e9
    if gb > args.max_dense_gb:
        return {"skipped": f"the dense matrix needs {gb:.1f} GB (limit {args.max_dense_gb} GB)"}
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    dense = x[rows].toarray()
    with threadpool_limits(limits=2):
        started = time.perf_counter()
        model = NearestNeighbors(
            n_neighbors=args.neighbours + 1, metric="correlation", algorithm="brute", n_jobs=2
        ).fit(dense)
        fit = time.perf_counter() - started
        started = time.perf_counter()
        dist, idx = model.kneighbors(x[asked].toarray())
        search = time.perf_counter() - started
    found = []
    for u, d, i in zip(asked, dist, idx):
        pairs = [(int(rows[j]), 1.0 - dd) for j, dd in zip(i, d) if rows[j] != u]
        found.append([(v, s) for v, s in pairs[: args.neighbours] if s > 0])
    started = time.perf_counter()
    out = metrics(x, truth, asked, found, args.k)
    out.update(fit_seconds=fit, neighbour_seconds=search, recommend_seconds=time.perf_counter() - started, dense_gb=gb)
    return out


def pruning_recall(x, args):
    path = os.path.join(args.dir, "customer_neighbours.parquet")
    if not os.path.exists(path):
        return {"skipped": "no customer_neighbours.parquet (run persona evaluate with user_knn on)"}
    ours = pq.read_table(path).to_pandas()
    by_user = {u: g for u, g in ours.groupby("user_idx")}
    active = np.where(np.diff(x.indptr) > 0)[0]
    rng = np.random.default_rng(7)
    sample = np.sort(rng.choice(active, size=min(args.recall_sample, len(active)), replace=False))
    recalls, captured, worst = [], [], 0.0
    for start in range(0, len(sample), 250):
        rows = sample[start : start + 250]
        corr = correlations(x, rows)
        for r, u in enumerate(rows):
            row = corr[r]
            best = np.argsort(-row, kind="stable")[: args.neighbours]
            exact = {int(v) for v in best if row[v] > 0}
            if not exact:
                continue
            g = by_user.get(int(u))
            mine = set() if g is None else set(g.neighbour_idx.astype(int))
            recalls.append(len(exact & mine) / len(exact))
            best_sum = sum(row[v] for v in exact)
            captured.append(0.0 if g is None else float(g.similarity.sum()) / best_sum)
            if g is not None:
                diff = np.abs(g.similarity.to_numpy(np.float64) - row[g.neighbour_idx.to_numpy()])
                worst = max(worst, float(diff.max()))
    return {
        "customers": len(recalls),
        "recall_at_neighbours": float(np.mean(recalls)) if recalls else None,
        "similarity_captured": float(np.mean(captured)) if captured else None,
        "max_similarity_difference": worst,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--neighbours", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-dense-gb", type=float, default=6.0)
    parser.add_argument("--recall-sample", type=int, default=2000)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    x, truth, asked = load(args)
    result = {"customers": int(x.shape[0]), "items": int(x.shape[1])}
    result["peer"] = {"skipped": "--skip-peer"} if args.skip_peer else peer(x, truth, asked, args)
    result["pruning"] = pruning_recall(x, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
