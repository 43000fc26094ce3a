"""Batches of one training epoch, drawn on the training device for the whole epoch at once.

Negatives are drawn in one go and redrawn where they hit a training item, found by binary search in
the sorted ``user × n_items + item`` keys, so the training loop never waits on Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch


class TripletSampler:
    """Each epoch: every training (user, positive) pair once, in random order, with one uniform negative.

    Negatives are drawn for the whole epoch at once and redrawn where they hit a training item, found by
    binary search in the sorted ``user × n_items + item`` keys — vectorised, on the training device.
    """

    def __init__(self, train: sp.csr_matrix, batch_size: int, device: torch.device, generator: torch.Generator):
        coo = train.tocoo()
        self.n_items, self.batch_size, self.generator = train.shape[1], batch_size, generator
        self.users = torch.from_numpy(coo.row.astype(np.int64)).to(device)
        self.items = torch.from_numpy(coo.col.astype(np.int64)).to(device)
        self.keys = torch.sort(self.users * self.n_items + self.items).values

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def _negatives(self, users: torch.Tensor) -> torch.Tensor:
        negatives = torch.empty_like(users)
        todo = torch.arange(len(users), device=users.device)
        for _ in range(100):  # each round leaves a fraction density(user) of the previous: a handful suffice
            draw = torch.randint(self.n_items, (len(todo),), device=users.device, generator=self.generator)
            negatives[todo] = draw
            keys = users[todo] * self.n_items + draw
            found = self.keys[torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)] == keys
            todo = todo[found]
            if len(todo) == 0:
                break
        return negatives

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.users), device=self.users.device, generator=self.generator)
        users, positives = self.users[order], self.items[order]
        negatives = self._negatives(users)
        yield from zip(*(t.split(self.batch_size) for t in (users, positives, negatives)), strict=True)


class UserTripletSampler(TripletSampler):
    """Each epoch: as many triplets as training pairs, each of a uniformly random user (among users with
    training items), a uniform positive of that user and a uniform negative.

    LightGCN's released code samples so (``UniformSample_original`` in the PyTorch port, ``sample`` in the
    TensorFlow original), and so do the BPR numbers its paper reports: users count equally, as in recall@k,
    which averages over users, rather than in proportion to their activity as :class:`TripletSampler`'s
    pairs do. Draws are independent (with replacement); the epoch has the same length as the pairs'.
    """

    def __init__(self, train: sp.csr_matrix, batch_size: int, device: torch.device, generator: torch.Generator):
        super().__init__(train, batch_size, device, generator)
        degree = np.diff(train.indptr)
        active = np.flatnonzero(degree)
        self.active = torch.from_numpy(active).to(device)
        self.start = torch.from_numpy(train.indptr[active].astype(np.int64)).to(device)
        self.degree = torch.from_numpy(degree[active].astype(np.float64)).to(device)
        self.columns = torch.from_numpy(train.indices.astype(np.int64)).to(device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        device, count = self.active.device, len(self.users)
        which = torch.randint(len(self.active), (count,), device=device, generator=self.generator)
        # float64: floor(u × degree) < degree for every u < 1 and degree < 2**52, so no clamp is needed
        offset = torch.rand(count, dtype=torch.float64, device=device, generator=self.generator) * self.degree[which]
        users, positives = self.active[which], self.columns[self.start[which] + offset.long()]
        negatives = self._negatives(users)
        yield from zip(*(t.split(self.batch_size) for t in (users, positives, negatives)), strict=True)


#: How models with triplet batches draw them (``TrainConfig.sampler``, ``--sampler``).
TRIPLET_SAMPLERS: dict[str, type[TripletSampler]] = {"pairs": TripletSampler, "users": UserTripletSampler}


class UserSampler:
    """Each epoch: every user with training items once, in random order (MultVAE's batches)."""

    def __init__(self, train: sp.csr_matrix, batch_size: int, device: torch.device, generator: torch.Generator):
        self.users = torch.from_numpy(np.flatnonzero(np.diff(train.indptr))).to(device)
        self.batch_size, self.generator = batch_size, generator

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.users), device=self.users.device, generator=self.generator)
        for batch in self.users[order].split(self.batch_size):
            yield (batch,)
