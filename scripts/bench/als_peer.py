"""ALS benchmark peer: the `implicit` library on the same train/holdout split as Persona.

  python als_peer.py implicit --dir DIR --rank R --iters N --alpha A --lambda L --cg-steps S
  python als_peer.py score    --dir DIR --factors OUT   # Persona's published factors, same metrics

DIR holds train.parquet (user_idx, item_idx, weight) and holdout.parquet (user_idx, item_idx),
as `persona evaluate --export-split` writes them. Both print one JSON line.

The model is the same: Persona's confidence is c = 1 + alpha * weight; implicit 0.7 uses the
matrix values as c directly (its `alpha` only scales them), so it is given 1 + alpha * weight
with alpha = 1. Conjugate gradient, `cg_steps` steps, float32, 2 threads, the same lambda.

Metrics are those of sql/18_evaluation.sql: for every user with training history and holdout
items not seen in training, the top k of the items seen in training (excluding the user's own
training items); precision@k, recall@k, NDCG@k, MAP@k (AP normalised by min(|holdout|, k)).
`score` recomputes them here from Persona's own factors, a check that both sides are scored
by the same rules.
"""

import argparse
import json
import os
import time

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from ranking import Ranking


def load(directory):
    train = pq.read_table(os.path.join(directory, "train.parquet")).to_pandas()
    holdout = pq.read_table(os.path.join(directory, "holdout.parquet")).to_pandas()
    return train, holdout


def metrics(user_factors, item_factors, train, holdout, k):
    """Top-k by dot product over the items seen in training, excluding each user's own."""
    users = user_factors.shape[0]
    items = item_factors.shape[0]
    seen = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float32), (train.user_idx, train.item_idx)),
        shape=(users, items),
    )
    candidate = np.zeros(items, dtype=bool)
    candidate[np.unique(train.item_idx)] = True
    truth = {}
    for u, i in zip(holdout.user_idx, holdout.item_idx):
        if u < users and i < items and seen[u, i] == 0:
            truth.setdefault(int(u), set()).add(int(i))
    asked = np.array(sorted(u for u in truth if seen.indptr[u + 1] > seen.indptr[u]))
    scores = Ranking(k)
    for start in range(0, len(asked), 4096):
        block = asked[start : start + 4096]
        scored = user_factors[block] @ item_factors.T
        scored[:, ~candidate] = -np.inf
        for row, u in enumerate(block):
            s = scored[row]
            s[seen.indices[seen.indptr[u] : seen.indptr[u + 1]]] = -np.inf
            top = np.argpartition(-s, k)[:k]
            scores.add(top[np.lexsort((top, -s[top]))], truth[int(u)])
    return {
        **scores.result(),
        "coverage": len(scores.recommended) / max(int(candidate.sum()), 1),
    }


def run_implicit(args):
    from threadpoolctl import threadpool_limits
    import implicit

    train, holdout = load(args.dir)
    users = int(max(train.user_idx.max(), holdout.user_idx.max())) + 1
    items = int(max(train.item_idx.max(), holdout.item_idx.max())) + 1
    confidence = (1.0 + args.alpha * train.weight.to_numpy()).astype(np.float32)
    user_items = sp.csr_matrix((confidence, (train.user_idx, train.item_idx)), shape=(users, items))
    times = []
    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=args.rank,
        regularization=args.reg,
        alpha=1.0,
        iterations=args.iters,
        use_cg=True,
        calculate_training_loss=False,
        num_threads=2,
        random_state=7,
    )
    model.cg_steps = args.cg_steps  # an attribute in implicit 0.7, not a constructor argument
    with threadpool_limits(limits=2):
        started = time.perf_counter()
        model.fit(user_items, show_progress=False, callback=lambda it, elapsed, loss: times.append(elapsed))
        fit = time.perf_counter() - started
    scores = metrics(model.user_factors, model.item_factors, train, holdout, args.k)
    print(json.dumps({"seconds_per_iteration": sum(times) / len(times), "fit_seconds": fit,
                      "iterations": len(times), **scores}))


def run_score(args):
    train, holdout = load(args.dir)
    def factors(table, id_col, rows):
        t = pq.read_table(os.path.join(args.factors, table)).to_pandas()
        out = np.zeros((rows, len(t.factors.iloc[0])), dtype=np.float32)
        out[t[id_col].to_numpy()] = np.stack(t.factors.to_numpy())
        return out
    users = int(max(train.user_idx.max(), holdout.user_idx.max())) + 1
    items = int(max(train.item_idx.max(), holdout.item_idx.max())) + 1
    x = factors("user_factors", "user_idx", users)
    y = factors("item_factors", "item_idx", items)
    print(json.dumps(metrics(x, y, train, holdout, args.k)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["implicit", "score"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--factors")
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--iters", type=int, default=15)
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--lambda", dest="reg", type=float, default=0.1)
    parser.add_argument("--cg-steps", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    run_implicit(args) if args.what == "implicit" else run_score(args)


if __name__ == "__main__":
    main()
