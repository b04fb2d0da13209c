"""Top-N peer: `implicit`'s batched `recommend` on Persona's own published ALS factors.

  python topn_peer.py --output OUT --date D [--top-n 10] [--threads 2] [--runs 3]

Reads the night's user_factors and item_factors (the manifest names their folders), gives
them to an `implicit` ALS model as its fitted factors, and times `recommend` for every
customer at once, best of `--runs` (3; 1 at the large scale, where one run takes minutes): the same exact top-N (every customer against every item,
blocked matrix products and a bounded selection in C++), with the items outside the catalog
filtered as Persona filters them. Persona also skips each customer's purchased items; the peer
is given no purchases (an empty matrix), which only makes its side cheaper. Prints one JSON line.
"""

import argparse
import json
import os
import time

# implicit's own threads do the work; OpenBLAS's pool beside them slows it (implicit warns).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def table(output, manifest, name):
    return ds.dataset(os.path.join(output, manifest["published"][name]), format="parquet").to_table()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--output", required=True)
    p.add_argument("--date", required=True)
    p.add_argument("--top-n", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    manifest = json.load(open(os.path.join(a.output, "_runs", f"dt={a.date}", "manifest.json")))
    users = table(a.output, manifest, "user_factors")
    items = table(a.output, manifest, "item_factors")
    u = np.asarray(users.column("factors").to_pylist(), dtype=np.float32)
    v = np.asarray(items.column("factors").to_pylist(), dtype=np.float32)
    in_catalog = np.asarray(items.column("in_catalog").to_pylist(), dtype=bool)

    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=u.shape[1], num_threads=a.threads)
    model.user_factors, model.item_factors = u, v
    nobody = sp.csr_matrix((u.shape[0], v.shape[0]), dtype=np.float32)
    outside = np.flatnonzero(~in_catalog)
    ids = np.arange(u.shape[0])
    best = float("inf")
    for _ in range(a.runs):
        t = time.perf_counter()
        model.recommend(ids, nobody, N=a.top_n, filter_already_liked_items=True, filter_items=outside)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"customers": int(u.shape[0]), "items": int(v.shape[0]), "rank": int(u.shape[1]),
                      "recommend_seconds": round(best, 3)}))


if __name__ == "__main__":
    main()
