"""LightGCN (He et al. 2020): MF whose embeddings are averaged over K rounds of graph propagation."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from lsr.recommend.models.mf import MF


def normalized_adjacency(train: sp.csr_matrix) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the user–item bipartite graph, users first, as a coalesced sparse tensor."""
    n_users, n_items = train.shape
    adjacency = sp.bmat([[None, train], [train.T, None]], format="coo", dtype=np.float32)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    values = inv_sqrt[adjacency.row] * adjacency.data * inv_sqrt[adjacency.col]
    indices = torch.from_numpy(np.vstack([adjacency.row, adjacency.col]).astype(np.int64))
    size = (n_users + n_items, n_users + n_items)
    return torch.sparse_coo_tensor(
        indices, torch.from_numpy(values.astype(np.float32)), size, check_invariants=False
    ).coalesce()


class LightGCN(MF):
    """Same parameters, loss and regulariser as MF (on the ego embeddings); scores use the propagated ones."""

    name = "lightgcn"
    defaults: ClassVar[dict[str, Any]] = {"dim": 64, "reg": 1e-4, "layers": 3}

    def __init__(self, train: sp.csr_matrix, **hparams: Any) -> None:
        super().__init__(train, **hparams)
        self.register_buffer("graph", normalized_adjacency(train), persistent=False)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        layer = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        total = layer
        for _ in range(self.hparams["layers"]):
            layer = torch.sparse.mm(self.graph, layer)
            total = total + layer
        mean = total / (self.hparams["layers"] + 1)
        return mean[: self.n_users], mean[self.n_users :]
