"""K-Means benchmark data and peer: scikit-learn's Lloyd on the same points from the same start.

  python kmeans_peer.py data   --rows N --dims D --k K --dir DIR   # points.parquet, init.parquet
  python kmeans_peer.py sklearn --dir DIR --k K --iters M [--dtype float32]  # one JSON line
  python kmeans_peer.py spark  --dir DIR --k K --iters M               # Spark MLlib, one JSON line
  python kmeans_peer.py segments --output ROOT --date D               # the nightly segments' points

The points are K overlapping Gaussian blobs (so Lloyd keeps moving for many iterations); the
initial centroids are K points drawn with a fixed seed. scikit-learn runs `algorithm="lloyd"`,
`n_init=1`, `tol=0` from those centroids on 2 threads. Its time per iteration is measured as
(fit with M iterations − fit with 1 iteration) / (M − 1), so input validation and set-up are
not counted against it.

Spark MLlib runs its K-Means (`org.apache.spark.mllib.clustering.KMeans`, which the DataFrame
`pyspark.ml` KMeans wraps; only this entry point takes initial centroids) in `local[2]` on the
same Parquet file read by Spark itself, cached in memory before timing, from the same
centroids with `epsilon = 0`, timed the same way.
"""

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_data(args):
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(2026)
    centres = rng.normal(0.0, 1.5, size=(args.k, args.dims))
    labels = rng.integers(0, args.k, size=args.rows)
    points = centres[labels] + rng.normal(0.0, 1.0, size=(args.rows, args.dims))
    names = [f"f{j}" for j in range(args.dims)]
    table = pa.table({n: points[:, j] for j, n in enumerate(names)})
    pq.write_table(table, os.path.join(args.dir, "points.parquet"), row_group_size=131072,
                   compression="snappy")
    start = points[rng.choice(args.rows, size=args.k, replace=False)]
    pq.write_table(pa.table({n: start[:, j] for j, n in enumerate(names)}),
                   os.path.join(args.dir, "init.parquet"))


def run_sklearn(args):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    table = pq.read_table(os.path.join(args.dir, "points.parquet"))
    x = np.ascontiguousarray(np.column_stack([c.to_numpy() for c in table.columns]),
                             dtype=args.dtype)
    init_t = pq.read_table(os.path.join(args.dir, "init.parquet"))
    init = np.column_stack([c.to_numpy() for c in init_t.columns]).astype(args.dtype)

    def fit(iters):
        km = KMeans(n_clusters=args.k, init=init, n_init=1, max_iter=iters, tol=0.0,
                    algorithm="lloyd", random_state=0)
        t = time.perf_counter()
        km.fit(x)
        return time.perf_counter() - t, km

    with threadpool_limits(limits=args.threads):
        fit(1)  # warm up (thread pools, page cache)
        t1, _ = fit(1)
        tm, km = fit(args.iters)
    iters = int(km.n_iter_)
    per_iter = (tm - t1) / max(iters - 1, 1)
    print(json.dumps({"peer": "scikit-learn", "iterations": iters, "fit_seconds": tm,
                      "seconds_per_iteration": per_iter, "inertia": float(km.inertia_)}))


def run_spark(args):
    from pyspark.ml.feature import VectorAssembler
    from pyspark.mllib.common import callJavaFunc, callMLlibFunc
    from pyspark.mllib.linalg import Vectors
    from pyspark.mllib.linalg.distributed import RowMatrix
    from pyspark.mllib.util import MLUtils
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(f"local[{args.threads}]")
             .config("spark.driver.memory", "8g").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(os.path.join(args.dir, "points.parquet"))
    assembled = VectorAssembler(inputCols=df.columns, outputCol="features").transform(df)
    vectors = MLUtils.convertVectorColumnsFromML(assembled.select("features"), "features").cache()
    vectors.count()
    # The JVM's RDD of vectors (no Python in the loop): what `KMeans.train` would otherwise
    # pickle over from Python.
    rdd = RowMatrix(vectors)._java_matrix_wrapper._java_model.rows().toJavaRDD()
    init_t = pq.read_table(os.path.join(args.dir, "init.parquet"))
    init = [Vectors.dense(r) for r in np.column_stack([c.to_numpy() for c in init_t.columns])]

    def fit(iters):
        t = time.perf_counter()
        model = callMLlibFunc("trainKMeansModel", rdd, args.k, iters, "k-means||", None, 2, 0.0,
                              init, "euclidean")
        return time.perf_counter() - t, model

    fit(1)  # warm up (JIT, the cached table)
    t1, _ = fit(1)
    tm, model = fit(args.iters)
    centers = callJavaFunc(spark.sparkContext, model.clusterCenters)
    inertia = callMLlibFunc("computeCostKmeansModel", rdd, centers)
    print(json.dumps({"peer": "spark-mllib", "iterations": args.iters, "fit_seconds": tm,
                      "seconds_per_iteration": (tm - t1) / max(args.iters - 1, 1),
                      "inertia": float(inertia)}))
    spark.stop()


def run_segments(args):
    """scikit-learn on the nightly segments' points: the published user_features of a run,
    prepared as the run's manifest says (ln(1 + max(x, 0)) for the log features, nulls imputed
    with the mean, z-scores), clustered with the run's k for the run's number of iterations
    from k-means++. Only the time per iteration is comparable (the initialisations differ)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    manifest = json.load(open(os.path.join(args.output, "_runs", f"dt={args.date}", "manifest.json")))
    cfg = manifest["config"]["segments"]
    fit = manifest["segments"]["fit"]
    from truth_score import matrix, published  # the same preparation the truth scores use

    features = pq.read_table(published(args.output, "user_features", args.date)).to_pandas()
    used = manifest["segments"].get("features") or [
        f for f in cfg["features"] if f not in manifest["segments"].get("dropped_features", [])]
    log = set(manifest["segments"].get("log_features") or cfg["log_features"])
    v = matrix(features, used, (), log)
    sd = v.std(axis=0)
    x = np.ascontiguousarray((v - v.mean(axis=0)) / np.where(sd > 0, sd, 1.0))
    k, iters = int(fit["k"]), max(int(fit["iterations"]), 2)

    def run(n):
        km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=n, tol=0.0,
                    algorithm="lloyd", random_state=0)
        t = time.perf_counter()
        km.fit(x)
        return time.perf_counter() - t

    # Per iteration = (time of `iters` iterations - time of one) / (iters - 1): both include
    # the same k-means++ start. The run often converges in a few iterations, so on small data
    # the difference is a few milliseconds: the best of five of each keeps noise out of it.
    with threadpool_limits(limits=args.threads):
        run(1)
        t1 = min(run(1) for _ in range(5))
        tm = min(run(iters) for _ in range(5))
    print(json.dumps({"rows": int(x.shape[0]), "dims": int(x.shape[1]), "k": k, "iterations": iters,
                      "seconds_per_iteration": (tm - t1) / (iters - 1)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["data", "sklearn", "spark", "segments"])
    p.add_argument("--output", help="segments: a persona run's output root")
    p.add_argument("--date", help="segments: the run date")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--dims", type=int, default=30)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="sklearn: the points' precision (the file holds float64)")
    p.add_argument("--dir")
    args = p.parse_args()
    {"data": make_data, "sklearn": run_sklearn, "spark": run_spark, "segments": run_segments}[args.what](args)


if __name__ == "__main__":
    main()
