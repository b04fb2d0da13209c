"""One member's segment scores (truth_score.py --segments-only, JSON on stdin) as table rows:
member, set, dims, ARI, NMI."""

import json
import sys

member = sys.argv[1]
scores = json.load(sys.stdin)["segments"]
rows = [("Persona (night)", "", scores["persona"])]
rows += [(f"sklearn {name}", str(v["dims"]), v) for name, v in scores["sklearn"].items()]
for name, dims, v in rows:
    print(f"{member:<13} {name:<22} {dims:>5} {v['ari']:7.3f} {v['nmi']:7.3f}", flush=True)
