"""What the trainer, the evaluator, the store and the server need from a backbone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import scipy.sparse as sp
import torch
from torch import nn

from lsr.errors import LsrError


class Recommender(nn.Module):
    """A model of one training matrix (users × items), built from it and its hyper-parameters alone.

    The training matrix is an argument rather than learned state because LightGCN propagates over it and
    MultVAE encodes users from it: a stored model is rebuilt from ``(train, hparams)`` plus its weights.
    """

    name: ClassVar[str]
    #: "triplets": batches of (user, positive, negative) tensors; "users": batches of user indices.
    sampler: ClassVar[str] = "triplets"
    #: How triplets are drawn unless the run says otherwise: a key of ``lsr.recommend.train.TRIPLET_SAMPLERS``.
    triplets: ClassVar[str] = "pairs"
    #: True when scores are user · item inner products, so top-k can be served from an HNSW index.
    dot_product: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    #: Attributes outside ``state_dict()`` that change while training (MultVAE's KL-annealing step): a
    #: training checkpoint saves them, a stored model does not need them.
    train_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, train: sp.csr_matrix, **hparams: Any) -> None:
        super().__init__()
        unknown = set(hparams) - set(self.defaults)
        if unknown:
            raise LsrError(f"{self.name} has no hyper-parameter {', '.join(sorted(unknown))}")
        self.hparams = {**self.defaults, **{k: v for k, v in hparams.items() if v is not None}}
        self.n_users, self.n_items = train.shape

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Training loss of one batch (regularisation included)."""
        raise NotImplementedError

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user: ``len(users) × n_items``; call under ``torch.no_grad()``."""
        raise NotImplementedError

    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``score`` with whatever it shares across users computed once (LightGCN's propagation)."""
        return self.score

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item vectors whose inner products are the scores (dot-product models only)."""
        raise NotImplementedError(f"{self.name} scores are not inner products")


def l2_batch(*tensors: torch.Tensor) -> torch.Tensor:
    """LightGCN's regulariser: half the squared norm of the batch's ego embeddings, per example."""
    return sum(t.pow(2).sum() for t in tensors) / (2 * tensors[0].shape[0])


def init_embedding(n: int, dim: int) -> nn.Embedding:
    """N(0, 0.1²) as LightGCN initialises its tables (Xavier makes no difference at this scale)."""
    table = nn.Embedding(n, dim)
    nn.init.normal_(table.weight, std=0.1)
    return table
