"""The offline metrics of sql/18_evaluation.sql, for the benchmark peers' recommendations: each
customer's top k against the set of items they interacted with in the holdout.

  scores = Ranking(k)
  for customer ...: scores.add(top, relevant)   # top: item ids best first; relevant: a set
  scores.result()                                # users, precision, recall, NDCG, MAP at k
  scores.recommended                             # every item recommended (for the coverage)
"""

import numpy as np


class Ranking:
    def __init__(self, k):
        self.k = k
        self.ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
        self.users = 0
        self.precision = self.recall = self.ndcg = self.ap = 0.0
        self.recommended = set()

    def add(self, top, relevant):
        """One customer's recommendations (at most k are read) and held-out items."""
        top = [int(i) for i in top][: self.k]
        self.recommended.update(top)
        hits = [r for r, item in enumerate(top, start=1) if item in relevant]
        self.users += 1
        self.precision += len(hits) / self.k
        self.recall += len(hits) / len(relevant)
        self.ndcg += sum(1.0 / np.log2(r + 1) for r in hits) / self.ideal[min(len(relevant), self.k) - 1]
        self.ap += sum((n + 1) / r for n, r in enumerate(hits)) / min(len(relevant), self.k)

    def result(self):
        n = max(self.users, 1)
        return {
            "users": self.users,
            "precision_at_k": self.precision / n,
            "recall_at_k": self.recall / n,
            "ndcg_at_k": self.ndcg / n,
            "map_at_k": self.ap / n,
        }
