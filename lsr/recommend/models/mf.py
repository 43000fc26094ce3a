"""Matrix factorisation trained with BPR (Rendle et al. 2009), in LightGCN's setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import scipy.sparse as sp
import torch
import torch.nn.functional as F

from lsr.recommend.models.base import Recommender, init_embedding, l2_batch


class MF(Recommender):
    """Scores are ``user · item``; the loss is BPR on one uniform negative plus L2 on the batch's embeddings."""

    name = "mf"
    dot_product = True
    #: uniformly random users, as LightGCN's released code trains MF-BPR and LightGCN for its paper's numbers
    triplets = "users"
    defaults: ClassVar[dict[str, Any]] = {"dim": 64, "reg": 1e-4}

    def __init__(self, train: sp.csr_matrix, **hparams: Any) -> None:
        super().__init__(train, **hparams)
        self.user_embedding = init_embedding(self.n_users, self.hparams["dim"])
        self.item_embedding = init_embedding(self.n_items, self.hparams["dim"])

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, pos, neg = batch
        user_vecs, item_vecs = self.embeddings()
        u, p, n = user_vecs[users], item_vecs[pos], item_vecs[neg]
        bpr = F.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
        ego = l2_batch(self.user_embedding(users), self.item_embedding(pos), self.item_embedding(neg))
        return bpr + self.hparams["reg"] * ego

    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        user_vecs, item_vecs = self.embeddings()
        return lambda users: user_vecs[users] @ item_vecs.T

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.scorer()(users)
