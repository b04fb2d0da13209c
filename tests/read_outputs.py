"""Reads every published table of a Persona output root with pyarrow (not DataFusion) and prints
a JSON report: rows, column types, compression and whether column statistics are present.
It finds the tables as docs/contract-and-outputs.md tells readers to: the latest night's
manifest (_runs/dt=<date>/manifest.json) names each table's folder in its "published" map.

    python tests/read_outputs.py OUTPUT_ROOT
"""
import json
import os
import sys

import pyarrow.parquet as pq

# Folders a night publishes that hold files, not Parquet tables: the audiences' activation
# files (CSV) and the report (HTML).
NOT_TABLES = ("exports", "report")


def latest_night(root):
    """The "published" map of the latest committed night: table -> folder under root."""
    runs = os.path.join(root, "_runs")
    for night in sorted(os.listdir(runs), reverse=True):
        path = os.path.join(runs, night, "manifest.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)["published"]
    return {}


def main(root):
    report = {}
    for table, folder in sorted(latest_night(root).items()):
        if table in NOT_TABLES:
            continue
        part = os.path.join(root, folder)
        files = sorted(f for f in os.listdir(part) if f.endswith(".parquet"))
        data = pq.read_table(part)
        meta = pq.ParquetFile(os.path.join(part, files[0])).metadata
        column = meta.row_group(0).column(0) if meta.num_row_groups else None
        report[table] = {
            "rows": data.num_rows,
            "types": {f.name: str(f.type) for f in data.schema},
            "compression": column.compression if column else "",
            "has_statistics": bool(column and column.is_stats_set),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
