"""LightGCN (He et al. 2020): MF whose embeddings are averaged over K rounds of graph propagation."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from lsr.recommend.models.mf import MF


def normalized_adjacency(train: sp.csr_matrix) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the user–item bipartite graph, users first, as a sparse CSR tensor."""
    adjacency = sp.bmat([[None, train], [train.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    normalized = sp.diags(inv_sqrt) @ adjacency @ sp.diags(inv_sqrt)
    normalized = normalized.tocsr().astype(np.float32)
    normalized.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with a dense matrix is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(normalized.indptr.astype(np.int64)),
            torch.from_numpy(normalized.indices.astype(np.int64)),
            torch.from_numpy(normalized.data),
            normalized.shape,
            check_invariants=False,
        )


class _SymmetricSpMM(torch.autograd.Function):
    """``graph @ x`` whose backward is ``graph @ grad``: the graph is symmetric, so there is no transpose
    to build (autograd's sparse ``mm`` transposes, and re-sorts, the 1.6M-entry Gowalla graph every step)."""

    @staticmethod
    def forward(ctx, graph: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - autograd's ctx
        ctx.graph = graph
        return graph @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # noqa: ANN001 - autograd's ctx
        return None, ctx.graph @ grad


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
            layer = _SymmetricSpMM.apply(self.graph, layer)
            total = total + layer
        mean = total / (self.hparams["layers"] + 1)
        return mean[: self.n_users], mean[self.n_users :]
