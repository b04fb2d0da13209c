#!/usr/bin/env python3
"""Persona's A/B statistics against scipy and statsmodels, on the same per-customer table.

Generates a table of customers with the columns of `experiment_customers` (skewed revenue,
orders and sessions, a pre-period correlated with the period after entry) for two experiments:
`two_arms` (control and email, winsorised at the 99th percentile, Holm) and `three_arms`
(control, a and b with weights 0.5/0.25/0.25, Benjamini-Hochberg). Runs
`persona experiment analyse --json` on it, computes every figure again with scipy and
statsmodels (numpy for the two formulas they do not have: the delta method's relative
interval and the ratio metric), and compares them. Exits 1 when any figure differs by more
than --tolerance (relative, 1e-6 by default; absolute below 1e-9).

    python3 scripts/check-experiment-stats.py --persona target/release/persona

Needs numpy, scipy, statsmodels and pyarrow (scripts/test.sh installs them).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

EXPERIMENTS = {
    "two_arms": {"arms": [("control", 0.5), ("email", 0.5)], "winsorize": 0.99, "correction": "holm"},
    "three_arms": {
        "arms": [("control", 0.5), ("a", 0.25), ("b", 0.25)],
        "winsorize": None,
        "correction": "benjamini_hochberg",
    },
}
METRICS = ["conversion", "revenue", "orders", "aov", "sessions"]
CAPPED = ["revenue", "orders", "sessions", "pre_revenue", "pre_orders", "pre_sessions"]
Z = stats.norm.ppf(0.975)


def customers(rng, n, lift):
    """n customers of one arm: the pre-period drives the period after entry; `lift` raises
    the conversion probability and the order count."""
    activity = rng.gamma(2.0, 1.0, n)
    pre_sessions = rng.poisson(activity * 3)
    pre_orders = rng.poisson(activity * 0.4)
    sessions = rng.poisson(activity * 3 * (1 + lift))
    orders = rng.poisson(activity * 0.4 * (1 + lift))
    basket = lambda k: np.round(rng.lognormal(3.0, 1.0, n) * k, 2)
    return {
        "conversion": (orders > 0).astype(float),
        "revenue": basket(orders),
        "orders": orders.astype(float),
        "sessions": sessions.astype(float),
        "pre_conversion": (pre_orders > 0).astype(float),
        "pre_revenue": basket(pre_orders),
        "pre_orders": pre_orders.astype(float),
        "pre_sessions": pre_sessions.astype(float),
    }


def table(seed):
    rng = np.random.default_rng(seed)
    columns = {k: [] for k in ["experiment", "customer_id", "arm"] + ["conversion", "revenue", "orders", "sessions", "pre_conversion", "pre_revenue", "pre_orders", "pre_sessions"]}
    lifts = {"control": 0.0, "email": 0.05, "a": 0.0, "b": 0.1}
    for key, e in EXPERIMENTS.items():
        for arm, weight in e["arms"]:
            n = int(6000 * weight) + int(rng.integers(-40, 40))
            rows = customers(rng, n, lifts[arm])
            columns["experiment"] += [key] * n
            columns["customer_id"] += [f"{key}-{arm}-{i}" for i in range(n)]
            columns["arm"] += [arm] * n
            for k, v in rows.items():
                columns[k] += list(v)
    return {k: np.array(v) for k, v in columns.items()}


def config_toml():
    out = []
    for key, e in EXPERIMENTS.items():
        arms = ", ".join(f'{{ name = "{a}", weight = {w} }}' for a, w in e["arms"])
        out.append(f'[[experiments]]\nkey = "{key}"\nstart = "2026-11-01"\narms = [{arms}]\ncorrection = "{e["correction"]}"\n')
        if e["winsorize"]:
            out.append(f"winsorize = {e['winsorize']}\n")
    return "".join(out)


def delta_relative(mc, vc, nc, mt, vt, nt):
    """The relative lift and its delta-method interval (GrowthBook's formula)."""
    rel = mt / mc - 1
    var = vt / (nt * mc**2) + mt**2 * vc / (nc * mc**4)
    half = Z * math.sqrt(var)
    return rel, rel - half, rel + half


def expected(data):
    """Every figure of every (experiment, metric, arm), from scipy, statsmodels and numpy."""
    out = {}
    for key, e in EXPERIMENTS.items():
        mask = data["experiment"] == key
        d = {k: v[mask] for k, v in data.items()}
        if e["winsorize"]:
            for c in CAPPED:
                d[c] = np.minimum(d[c], np.percentile(d[c], 100 * e["winsorize"]))
        arms = [a for a, _ in e["arms"]]
        counts = [int((d["arm"] == a).sum()) for a in arms]
        weights = np.array([w for _, w in e["arms"]])
        srm = stats.chisquare(counts, f_exp=np.array(weights) / weights.sum() * sum(counts)).pvalue
        raw_p, cuped_p = {a: {} for a in arms[1:]}, {a: {} for a in arms[1:]}
        for metric in METRICS:
            y_col, x_col = ("revenue", "orders") if metric == "aov" else (metric, f"pre_{metric}")
            y, x = d[y_col], d[x_col]
            theta = np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1)
            adjusted = y - theta * (x - x.mean())
            c = d["arm"] == "control"
            for arm in arms:
                t = d["arm"] == arm
                row = {"customers": int(t.sum()), "srm_p_value": srm}
                if metric == "aov":
                    def ratio(sel):
                        n, my, mx = sel.sum(), y[sel].mean(), x[sel].mean()
                        vy, vx = y[sel].var(ddof=1), x[sel].var(ddof=1)
                        cov = np.cov(x[sel], y[sel], ddof=1)[0, 1]
                        var = vy / mx**2 - 2 * my * cov / mx**3 + my**2 * vx / mx**4
                        return my / mx, var, n
                    rt, vt, nt = ratio(t)
                    row["mean"] = rt
                    if arm != "control":
                        rc, vc, nc = ratio(c)
                        se = math.sqrt(vc / nc + vt / nt)
                        lift = rt - rc
                        row.update(lift=lift, lift_low=lift - Z * se, lift_high=lift + Z * se,
                                   p_value=2 * stats.norm.sf(abs(lift / se)))
                        rel = delta_relative(rc, vc, nc, rt, vt, nt)
                        row.update(relative_lift=rel[0], relative_low=rel[1], relative_high=rel[2])
                else:
                    row["mean"] = y[t].mean()
                    row["cuped_theta"] = theta
                    row["cuped_mean"] = adjusted[t].mean()
                    if arm != "control":
                        if metric == "conversion":
                            count = [y[t].sum(), y[c].sum()]
                            nobs = [t.sum(), c.sum()]
                            z, p = proportions_ztest(count, nobs)
                            low, high = confint_proportions_2indep(count[0], nobs[0], count[1], nobs[1], method="wald", compare="diff")
                            pt, pc = y[t].mean(), y[c].mean()
                            rel = delta_relative(pc, pc * (1 - pc), nobs[1], pt, pt * (1 - pt), nobs[0])
                        else:
                            r = stats.ttest_ind(y[t], y[c], equal_var=False)
                            ci = r.confidence_interval(0.95)
                            p, low, high = r.pvalue, ci.low, ci.high
                            rel = delta_relative(y[c].mean(), y[c].var(ddof=1), c.sum(), y[t].mean(), y[t].var(ddof=1), t.sum())
                        row.update(lift=y[t].mean() - y[c].mean(), lift_low=low, lift_high=high, p_value=p,
                                   relative_lift=rel[0], relative_low=rel[1], relative_high=rel[2])
                        r = stats.ttest_ind(adjusted[t], adjusted[c], equal_var=False)
                        ci = r.confidence_interval(0.95)
                        rel = delta_relative(adjusted[c].mean(), adjusted[c].var(ddof=1), c.sum(), adjusted[t].mean(), adjusted[t].var(ddof=1), t.sum())
                        row.update(cuped_lift=adjusted[t].mean() - adjusted[c].mean(), cuped_lift_low=ci.low,
                                   cuped_lift_high=ci.high, cuped_p_value=r.pvalue, cuped_relative_lift=rel[0],
                                   cuped_relative_low=rel[1], cuped_relative_high=rel[2])
                        cuped_p[arm][metric] = r.pvalue
                if arm != "control":
                    raw_p[arm][metric] = row["p_value"]
                out[(key, metric, arm)] = row
        method = {"holm": "holm", "benjamini_hochberg": "fdr_bh"}[e["correction"]]
        for arm in arms[1:]:
            for field, ps in (("p_adjusted", raw_p[arm]), ("cuped_p_adjusted", cuped_p[arm])):
                names = list(ps)
                adjusted_p = multipletests([ps[m] for m in names], method=method)[1]
                for m, q in zip(names, adjusted_p):
                    out[(key, m, arm)][field] = q
    return out


def persona_rows(persona, path, config):
    result = subprocess.run(
        [persona, "experiment", "analyse", "--input", path, "--config", config, "--json"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"persona experiment analyse failed ({result.returncode}): {result.stderr}")
    rows = {}
    for line in result.stdout.splitlines():
        r = json.loads(line)
        flat = {"customers": r["customers"], "mean": r["mean"], "srm_p_value": r["srm_p_value"],
                "p_adjusted": r["p_adjusted"], "cuped_p_adjusted": r["cuped_p_adjusted"],
                "cuped_theta": r["cuped_theta"], "cuped_mean": r["cuped_mean"]}
        for prefix, c in (("", r["raw"]), ("cuped_", r["cuped"])):
            if c:
                for k in ["lift", "lift_low", "lift_high", "relative_lift", "relative_low", "relative_high", "p_value"]:
                    flat[prefix + k] = c[k]
        rows[(r["experiment"], r["metric"], r["arm"])] = flat
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persona", default="target/release/persona")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tolerance", type=float, default=1e-6)
    args = ap.parse_args()
    data = table(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "customers.parquet")
        pq.write_table(pa.table({k: pa.array(v) for k, v in data.items()}), path)
        config = os.path.join(tmp, "persona.toml")
        with open(config, "w") as f:
            f.write(config_toml())
        got = persona_rows(args.persona, path, config)
    want = expected(data)
    if set(got) != set(want):
        sys.exit(f"rows differ: persona has {sorted(set(got) - set(want))} more, {sorted(set(want) - set(got))} fewer")
    worst, failures, compared = 0.0, [], 0
    for row_key, fields in want.items():
        for name, w in fields.items():
            g = got[row_key].get(name)
            if g is None:
                failures.append(f"{row_key} {name}: persona has none, scipy/statsmodels {w}")
                continue
            compared += 1
            diff = abs(g - w) / max(abs(w), 1e-300)
            worst = max(worst, diff)
            if diff > args.tolerance and abs(g - w) > 1e-9:
                failures.append(f"{row_key} {name}: persona {g!r}, scipy/statsmodels {w!r}")
    print(f"{compared} figures of {len(want)} rows compared with scipy {__import__('scipy').__version__} "
          f"and statsmodels {__import__('statsmodels').__version__}: largest relative difference {worst:.2e}")
    if failures:
        print("\n".join(failures[:40]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
