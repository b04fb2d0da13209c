"""Item-to-item benchmark peer: `implicit`'s CosineRecommender and BM25Recommender on the same
train/holdout split as Persona's nightly evaluation.

  python knn_peer.py --dir DIR --model cosine|bm25 [--neighbours 50 --k1 1.2 --b 0.75 --k 10]

DIR holds train.parquet (user_idx, item_idx, weight) and holdout.parquet (user_idx, item_idx),
as `persona evaluate --export-split` writes them. Prints one JSON line: the seconds of fit()
and of recommend() for the holdout's customers, and the metrics of sql/18_evaluation.sql
(those of als_peer.py, from the recommended lists): every customer with training history and
holdout items not seen in training, the top k excluding the customer's training items.
"""

import argparse
import json
import os
import time

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from ranking import Ranking


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--model", choices=["cosine", "bm25"], required=True)
    parser.add_argument("--neighbours", type=int, default=50)
    parser.add_argument("--k1", type=float, default=1.2)
    parser.add_argument("--b", type=float, default=0.75)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    train = pq.read_table(os.path.join(args.dir, "train.parquet")).to_pandas()
    holdout = pq.read_table(os.path.join(args.dir, "holdout.parquet")).to_pandas()
    users = int(max(train.user_idx.max(), holdout.user_idx.max())) + 1
    items = int(max(train.item_idx.max(), holdout.item_idx.max())) + 1
    user_items = sp.csr_matrix(
        (train.weight.to_numpy().astype(np.float64), (train.user_idx, train.item_idx)),
        shape=(users, items),
    )
    truth = {}
    for u, i in zip(holdout.user_idx, holdout.item_idx):
        if user_items[u, i] == 0:
            truth.setdefault(int(u), set()).add(int(i))
    asked = np.array(sorted(u for u in truth if user_items.indptr[u + 1] > user_items.indptr[u]))
    if args.model == "cosine":
        model = CosineRecommender(K=args.neighbours, num_threads=2)
    else:
        model = BM25Recommender(K=args.neighbours, K1=args.k1, B=args.b, num_threads=2)
    with threadpool_limits(limits=2):
        started = time.perf_counter()
        model.fit(user_items, show_progress=False)
        fit = time.perf_counter() - started
        started = time.perf_counter()
        ids, _ = model.recommend(asked, user_items[asked], N=args.k, filter_already_liked_items=True)
        recommend = time.perf_counter() - started

    scores = Ranking(args.k)
    for row, u in enumerate(asked):
        scores.add([i for i in ids[row] if i >= 0], truth[int(u)])
    print(json.dumps({
        "model": args.model, "fit_seconds": fit, "recommend_seconds": recommend,
        **scores.result(),
        "coverage": len(scores.recommended) / max(len(np.unique(train.item_idx)), 1),
    }))


if __name__ == "__main__":
    main()
