"""Mult-VAE (Liang et al. 2018): a variational autoencoder of each user's row with a multinomial likelihood."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from lsr.recommend.models.base import Recommender


class MultVAE(Recommender):
    """Items → 600 → ``dim`` (μ, log σ²) → 600 → items, tanh, input dropout 0.5, KL weight annealed to 0.2.

    Users are encoded from their training row, so there is no user table: the model is item-sized only.
    """

    name = "multvae"
    sampler = "users"
    defaults: ClassVar[dict[str, Any]] = {
        "dim": 200,
        "hidden": 600,
        "dropout": 0.5,
        "anneal_cap": 0.2,
        "anneal_steps": 200_000,
    }
    train_attributes: ClassVar[tuple[str, ...]] = ("steps",)

    def __init__(self, train: sp.csr_matrix, **hparams: Any) -> None:
        super().__init__(train, **hparams)
        dim, hidden = self.hparams["dim"], self.hparams["hidden"]
        self.train_rows = train.tocsr().astype(np.float32)
        self.encoder_in = nn.Linear(self.n_items, hidden)
        self.encoder_out = nn.Linear(hidden, 2 * dim)
        self.decoder_in = nn.Linear(dim, hidden)
        self.decoder_out = nn.Linear(hidden, self.n_items)
        self.steps = 0  # KL annealing: in training checkpoints, not stored models (it only matters while training)

    def _rows(self, users: torch.Tensor) -> torch.Tensor:
        rows = torch.from_numpy(self.train_rows[users.cpu().numpy()].toarray())
        return rows.to(self.decoder_out.weight.device)

    def _forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.dropout(F.normalize(rows, dim=1), self.hparams["dropout"], training=self.training)
        mu, logvar = self.encoder_out(torch.tanh(self.encoder_in(x))).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder_out(torch.tanh(self.decoder_in(z))), mu, logvar

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        rows = self._rows(batch[0])
        logits, mu, logvar = self._forward(rows)
        nll = -(F.log_softmax(logits, dim=1) * rows).sum(1).mean()
        kl = (0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar).sum(1)).mean()
        beta = min(self.hparams["anneal_cap"], self.steps / self.hparams["anneal_steps"])
        self.steps += 1
        return nll + beta * kl

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self._forward(self._rows(users))[0]
