"""scikit-learn's LogisticRegression on Persona's own propensity training matrix.

Reads FOLDER/propensity.parquet (`persona run --export-split FOLDER` writes it: the training
snapshot's rows with split, label and the standardised coordinates __z0..__zN that Persona's
fit used) and Persona's published `propensity_model` (its coefficients, in the same order),
fits scikit-learn's LogisticRegression with the same penalty (C = 1 / l2, intercept not
penalised) on the `fit` rows with each solver, and prints one JSON line: per solver the fit
seconds, AUC on the `test` rows and the largest relative coefficient difference to Persona's;
and Persona's AUC on the same rows, recomputed here from its coefficients.

    python propensity_peer.py --split FOLDER --model MODEL_DIR --manifest MANIFEST --l2 1.0
"""

import argparse
import glob
import json
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", required=True)
    ap.add_argument("--model", required=True, help="the published propensity_model partition")
    ap.add_argument("--manifest", required=True, help="the night's manifest.json")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    rows = pq.read_table(f"{args.split}/propensity.parquet").to_pandas()
    files = sorted(glob.glob(f"{args.model}/**/*.parquet", recursive=True))
    model = pq.read_table(files).to_pandas()
    # The published model is ordered by importance; the coordinates __z0..__zN follow the
    # manifest's feature order.
    features = json.load(open(args.manifest))["propensity"]["features"]
    terms = model.set_index("term").loc[features].reset_index()
    intercept = float(model.loc[model["term"] == "(intercept)", "standardized_coefficient"].iloc[0])
    persona = terms["standardized_coefficient"].to_numpy()
    columns = [f"__z{i}" for i in range(len(terms))]
    fit = rows[rows["split"] == "fit"]
    test = rows[rows["split"] == "test"]
    X, y = fit[columns].to_numpy(dtype=np.float64), fit["label"].to_numpy()
    Xt, yt = test[columns].to_numpy(dtype=np.float64), test["label"].to_numpy()

    out = {"rows": int(len(fit)), "features": len(columns), "test_rows": int(len(test))}
    out["persona_auc"] = float(roc_auc_score(yt, Xt @ persona + intercept))
    for solver in ["lbfgs", "newton-cholesky"]:
        best = None
        for _ in range(args.repeat):
            clf = LogisticRegression(C=1.0 / args.l2, solver=solver, tol=1e-10, max_iter=10_000)
            t = time.perf_counter()
            clf.fit(X, y)
            seconds = time.perf_counter() - t
            best = seconds if best is None else min(best, seconds)
        theirs = np.concatenate([clf.coef_[0], clf.intercept_])
        ours = np.concatenate([persona, [intercept]])
        rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-3)
        out[solver] = {
            "fit_seconds": best,
            "auc": float(roc_auc_score(yt, clf.decision_function(Xt))),
            "max_relative_coefficient_difference": float(rel.max()),
            "iterations": int(np.max(clf.n_iter_)),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
