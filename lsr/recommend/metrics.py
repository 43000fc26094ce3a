"""Full-ranking evaluation as LightGCN reports it.

Every item is ranked for every user with test items; the user's training items are excluded (score −∞).
Recall@k is hits / |test items| and NDCG@k divides by the ideal DCG of min(|test items|, k) hits, both
averaged over users with at least one test item — LightGCN's ``test_one_batch``, not a sampled metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

KS = (10, 20, 50)


def ranking_metrics(top: torch.Tensor, relevant: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, torch.Tensor]:
    """Per-user sums of recall@k and ndcg@k for ranked item lists ``top`` (users × ≥max k) and a bool
    users × items ``relevant`` matrix; users without relevant items must be left out by the caller."""
    hits = relevant.gather(1, top[:, : max(ks)]).float()
    n_relevant = relevant.sum(1).float()
    discount = 1.0 / torch.log2(torch.arange(2, max(ks) + 2, device=top.device, dtype=torch.float32))
    ideal = torch.cumsum(discount, 0)
    out = {}
    for k in ks:
        width = min(k, hits.shape[1])  # catalogues smaller than k
        out[f"recall@{k}"] = (hits[:, :width].sum(1) / n_relevant).sum()
        best = ideal[(n_relevant.clamp(max=k) - 1).long()]
        out[f"ndcg@{k}"] = ((hits[:, :width] * discount[:width]).sum(1) / best).sum()
    return out


def _rows(matrix: sp.csr_matrix, users: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (row within the batch, item) of ``users``' entries, for indexing a batch of scores."""
    block = matrix[users].tocoo()
    return torch.from_numpy(block.row).long().to(device), torch.from_numpy(block.col).long().to(device)


@torch.no_grad()
def evaluate(
    scorer: Callable[[torch.Tensor], torch.Tensor],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    device: str | torch.device = "cpu",
    ks: tuple[int, ...] = KS,
    batch_users: int = 1024,
) -> dict[str, float]:
    """Recall and NDCG at each k on ``test``, plus ``users`` evaluated and ``inference_ms_per_user``.

    ``scorer`` maps a tensor of user indices to their scores over all items (a model's ``scorer()``).
    The time per user covers scoring all items, masking training items and the top-k, on ``device``.
    """
    device = torch.device(device)
    users = np.flatnonzero(np.diff(test.indptr))
    totals = {f"{m}@{k}": torch.zeros((), device=device) for k in ks for m in ("recall", "ndcg")}
    start = time.perf_counter()
    for begin in range(0, len(users), batch_users):
        batch = users[begin : begin + batch_users]
        scores = scorer(torch.from_numpy(batch).long().to(device))
        scores[_rows(train, batch, device)] = -torch.inf
        top = torch.topk(scores, min(max(ks), scores.shape[1])).indices
        relevant = torch.zeros_like(scores, dtype=torch.bool)
        relevant[_rows(test, batch, device)] = True
        for name, value in ranking_metrics(top, relevant, ks).items():
            totals[name] += value
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    metrics = {name: float(value) / max(len(users), 1) for name, value in totals.items()}
    metrics["users"] = len(users)
    metrics["inference_ms_per_user"] = 1000 * elapsed / max(len(users), 1)
    return metrics
