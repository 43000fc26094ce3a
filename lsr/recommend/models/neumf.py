"""NeuMF (He et al. 2017): a GMF branch and an MLP branch over separate embeddings, fused by a linear layer."""

from __future__ import annotations

from typing import Any, ClassVar

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from lsr.recommend.models.base import Recommender, init_embedding, l2_batch


class NeuMF(Recommender):
    """Trained as the paper does, by log loss on positives and sampled negatives (one per positive here).

    Scores are not inner products, so full ranking evaluates the MLP on every (user, item) pair; the first
    MLP layer is split into a user half and an item half so that it costs two small matmuls, not one per pair.
    """

    name = "neumf"
    defaults: ClassVar[dict[str, Any]] = {"dim": 64, "reg": 1e-4}
    #: users scored at once: the MLP holds ``chunk × n_items × dim`` activations.
    chunk = 64

    def __init__(self, train: sp.csr_matrix, **hparams: Any) -> None:
        super().__init__(train, **hparams)
        dim = self.hparams["dim"]
        self.user_gmf, self.item_gmf = init_embedding(self.n_users, dim), init_embedding(self.n_items, dim)
        self.user_mlp, self.item_mlp = init_embedding(self.n_users, dim), init_embedding(self.n_items, dim)
        self.mlp_user_in = nn.Linear(dim, dim)  # with mlp_item_in: the first layer on [user; item]
        self.mlp_item_in = nn.Linear(dim, dim, bias=False)
        self.mlp_hidden = nn.Linear(dim, dim // 2)
        self.predict = nn.Linear(dim + dim // 2, 1)

    def _logits(self, users: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Logits of paired ``users``/``items`` (1-D), or of every item for each user when ``items`` is None."""
        gmf_u, mlp_u = self.user_gmf(users), self.mlp_user_in(self.user_mlp(users))
        if items is None:
            gmf_i, mlp_i = self.item_gmf.weight.unsqueeze(0), self.mlp_item_in(self.item_mlp.weight).unsqueeze(0)
            gmf_u, mlp_u = gmf_u.unsqueeze(1), mlp_u.unsqueeze(1)
        else:
            gmf_i, mlp_i = self.item_gmf(items), self.mlp_item_in(self.item_mlp(items))
        hidden = F.relu(self.mlp_hidden(F.relu(mlp_u + mlp_i)))
        w_gmf, w_mlp = self.predict.weight[0, : gmf_u.shape[-1]], self.predict.weight[0, gmf_u.shape[-1] :]
        return (gmf_u * gmf_i) @ w_gmf + hidden @ w_mlp + self.predict.bias

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, pos, neg = batch
        logits = torch.cat([self._logits(users, pos), self._logits(users, neg)])
        labels = torch.cat([torch.ones_like(pos, dtype=logits.dtype), torch.zeros_like(neg, dtype=logits.dtype)])
        ego = l2_batch(self.user_gmf(users), self.item_gmf(pos), self.item_gmf(neg))
        ego = ego + l2_batch(self.user_mlp(users), self.item_mlp(pos), self.item_mlp(neg))
        return F.binary_cross_entropy_with_logits(logits, labels) + self.hparams["reg"] * ego

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._logits(chunk, None) for chunk in users.split(self.chunk)])
