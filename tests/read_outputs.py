"""Reads every published table of a Persona output root with pyarrow (not DataFusion) and prints
a JSON report: rows, column types, compression and whether column statistics are present.
Only partitions with _SUCCESS are read, as docs/contract-and-outputs.md tells readers to do.

    python tests/read_outputs.py OUTPUT_ROOT
"""
import json
import os
import sys

import pyarrow.parquet as pq


def main(root):
    report = {}
    for table in sorted(os.listdir(root)):
        if table.startswith(("_", ".")):
            continue
        parts = sorted(
            p for p in os.listdir(os.path.join(root, table))
            if os.path.exists(os.path.join(root, table, p, "_SUCCESS"))
        )
        if not parts:
            continue
        part = os.path.join(root, table, parts[-1])
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
