"""Checks that a Persona output root is consistent, as scripts/soak.sh needs after every night:

- every night's manifest (_runs/dt=<date>/manifest.json) names, in its "published" map, one
  folder per table, each of the manifest's own run (run=<run_id>), complete (_SUCCESS) and
  holding exactly the rows the manifest's "tables" says;
- with EXPECTED_DATE, the newest night is that date;
- `persona sql` answers from the newest night, with the manifest's count of user_profiles.

    python soak_check.py OUTPUT_ROOT PERSONA_BIN [EXPECTED_DATE]

Prints one line (nights, tables, replaced folders kept readable, folders no manifest names) or
exits 1 naming the problem.
"""
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq


def fail(message):
    print(f"INCONSISTENT: {message}", file=sys.stderr)
    sys.exit(1)


def main(root, binary, expected=None):
    runs = os.path.join(root, "_runs")
    nights = []
    for entry in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
        path = os.path.join(runs, entry, "manifest.json")
        if os.path.exists(path):
            with open(path) as f:
                nights.append((entry[3:], json.load(f)))
    if expected and (not nights or nights[-1][0] != expected):
        fail(f"the newest night is {nights[-1][0] if nights else 'none'}, expected {expected}")
    named = set()
    kept = set()
    tables = 0
    for date, manifest in nights:
        run = manifest["run_id"]
        # Replaced runs kept readable for [output] keep_replaced_hours: still whole.
        for replaced in manifest.get("replaced", []):
            for folder in replaced["folders"]:
                kept.add(folder)
                if not os.path.exists(os.path.join(root, folder, "_SUCCESS")):
                    fail(f"{date}: the replaced run's {folder} is no longer whole")
        for table, folder in manifest["published"].items():
            named.add(folder)
            tables += 1
            full = os.path.join(root, folder)
            if folder != f"{table}/dt={date}/run={run}":
                fail(f"{date}: {table} is {folder}, not of the night's run {run}")
            if not os.path.exists(os.path.join(full, "_SUCCESS")):
                fail(f"{date}: {folder} has no _SUCCESS")
            rows = pq.read_table(full).num_rows
            if rows != manifest["tables"][table]:
                fail(f"{date}: {folder} holds {rows} rows, the manifest says {manifest['tables'][table]}")
    orphans = 0
    for table in os.listdir(root):
        if table.startswith(("_", ".")) or not os.path.isdir(os.path.join(root, table)):
            continue
        for day in os.listdir(os.path.join(root, table)):
            for run in os.listdir(os.path.join(root, table, day)):
                folder = f"{table}/{day}/{run}"
                if folder not in named and folder not in kept:
                    orphans += 1
    if nights:
        date, manifest = nights[-1]
        out = subprocess.run(
            [binary, "sql", "--output", root, "--format", "csv",
             "SELECT COUNT(*) AS n FROM user_profiles"],
            capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"persona sql failed: {out.stderr.strip()}")
        n = int(out.stdout.splitlines()[1])
        if n != manifest["tables"]["user_profiles"]:
            fail(f"persona sql counts {n} profiles, the manifest of {date} says {manifest['tables']['user_profiles']}")
    print(f"consistent: {len(nights)} nights, {tables} tables, {len(kept)} replaced folders kept "
          f"readable, {orphans} folders no manifest names")


if __name__ == "__main__":
    main(*sys.argv[1:])
