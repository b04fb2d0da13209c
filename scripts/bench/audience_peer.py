"""The analyst's way to an audience, for scripts/bench-audiences.sh: the same list written by
hand in DuckDB over the night's published Parquet (user_profiles joined with propensity, the
predicate, the opt-in, the order and the limit), timed in-process, and its customer ids
compared with the `audiences` table Persona published for the same definition.

    audience_peer.py --output OUT --date D --name NAME --where SQL [--order-by SQL] [--limit N]

Prints one line: `rows=N same_ids=true|false query_s=S`.
"""

import argparse
import json
import os
import time

import duckdb


def folder(output, manifest, table):
    return os.path.join(output, manifest["published"][table])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", required=True)
    ap.add_argument("--date", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--where", required=True)
    ap.add_argument("--order-by", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    with open(os.path.join(a.output, "_runs", f"dt={a.date}", "manifest.json")) as f:
        manifest = json.load(f)
    profiles = folder(a.output, manifest, "user_profiles")
    propensity = folder(a.output, manifest, "propensity")
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    order = f"{a.order_by}, customer_id" if a.order_by else "customer_id"
    limit = f"LIMIT {a.limit}" if a.limit else ""
    sql = f"""
        WITH v AS (
          SELECT p.*, q.probability, q.decile
          FROM read_parquet('{profiles}/*.parquet') p
          LEFT JOIN read_parquet('{propensity}/*.parquet') q USING (customer_id)
        )
        SELECT customer_id FROM v
        WHERE ({a.where}) AND COALESCE(marketing_opt_in, false)
        ORDER BY {order} {limit}
    """
    t = time.perf_counter()
    ids = [r[0] for r in con.execute(sql).fetchall()]
    query_s = time.perf_counter() - t
    published = folder(a.output, manifest, "audiences")
    theirs = {
        r[0]
        for r in con.execute(
            f"SELECT customer_id FROM read_parquet('{published}/*.parquet') "
            f"WHERE audience = '{a.name}'"
        ).fetchall()
    }
    print(f"rows={len(ids)} same_ids={str(set(ids) == theirs).lower()} query_s={query_s:.3f}")


if __name__ == "__main__":
    main()
