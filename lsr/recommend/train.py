"""Training loop shared by the four backbones, dense or with Dynamic Sparse Learning.

Train N epochs, then evaluate once on the test split, as LightGCN reports its numbers (no early stopping
on the test set); ``eval_every`` adds intermediate test evaluations to ``log.jsonl`` for the curve only.
Negatives are sampled for a whole epoch at once on the training device, so the loop never waits on Python.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.recommend.data import Interactions
from lsr.recommend.dsl import SparseMasks
from lsr.recommend.metrics import evaluate
from lsr.recommend.models import MODELS, Recommender
from lsr.recommend.store import save_interactions, save_model


@dataclass
class TrainConfig:
    """Everything a run depends on; written to ``config.json`` beside the model."""

    model: str
    epochs: int = 20
    batch_size: int | None = None  # None: 2048 for BPR-style models (LightGCN's), 500 users for MultVAE (Liang's)
    lr: float = 1e-3
    density: float = 1.0
    device: str = "cpu"
    seed: int = 0
    update_every: int = 100
    prune_fraction: float = 0.5
    regrow: str = "gradient"
    static_mask: bool = False
    eval_every: int = 0
    time_limit: float = 0.0  # seconds of training after which no new epoch starts (0: none); for leased GPUs
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def dsl(self) -> bool:
        return self.density < 1.0


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


def _progress(iterable: Iterable, **kwargs: Any) -> Iterable:
    """tqdm when it is installed (it is not on bare GPU machines), the plain iterable otherwise."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **kwargs)


def _plot(log: list[dict[str, Any]], path: Path) -> None:
    """recall@20 over epochs, when matplotlib is installed and there was more than one evaluation."""
    points = [(row["epoch"], row["recall@20"]) for row in log if "recall@20" in row]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if len(points) < 2:
        return
    figure, axes = plt.subplots(figsize=(5, 3.5))
    axes.plot(*zip(*points, strict=True), marker="o")
    axes.set_xlabel("epoch")
    axes.set_ylabel("recall@20 (test)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(data: Interactions, config: TrainConfig) -> Recommender:
    if config.model not in MODELS:
        raise LsrError(f"unknown model {config.model!r}: choose one of {', '.join(MODELS)}")
    return MODELS[config.model](data.train, **config.hparams)


def train(data: Interactions, config: TrainConfig, output_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate on the test split and write the model folder; returns ``metrics.json``'s content."""
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LsrError("--device cuda but torch sees no CUDA device")
    torch.manual_seed(config.seed)
    model = build(data, config).to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    sampler_type = TripletSampler if model.sampler == "triplets" else UserSampler
    batch_size = config.batch_size or (2048 if model.sampler == "triplets" else 500)
    sampler = sampler_type(data.train, batch_size, device, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type == "cuda")  # fewer kernels
    masks = None
    if config.dsl:
        masks = SparseMasks(
            model,
            optimizer,
            config.density,
            total_steps=config.epochs * len(sampler),
            update_every=config.update_every,
            fraction=config.prune_fraction,
            regrow=config.regrow,
            static=config.static_mask,
            seed=config.seed,
        )
    log: list[dict[str, Any]] = []
    epoch_seconds: list[float] = []
    began = time.perf_counter()
    for epoch in _progress(range(1, config.epochs + 1), desc=f"{config.model} epochs", disable=not progress):
        model.train()
        _synchronize(device)
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        for batch in sampler:
            loss = model.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if masks is not None:
                masks.step()
            total += loss.detach()
        _synchronize(device)
        epoch_seconds.append(time.perf_counter() - start)
        row: dict[str, Any] = {"epoch": epoch, "loss": float(total) / len(sampler), "seconds": epoch_seconds[-1]}
        if config.eval_every and epoch % config.eval_every == 0 and epoch < config.epochs:
            row.update(_evaluate(model, data, device))
        log.append(row)
        if config.time_limit and time.perf_counter() - began > config.time_limit and epoch < config.epochs:
            break
    metrics = {**_evaluate(model, data, device), "epochs": len(epoch_seconds), "planned_epochs": config.epochs}
    metrics["loss"] = log[-1]["loss"] if log else None
    metrics["train_seconds_per_epoch"] = float(np.mean(epoch_seconds)) if epoch_seconds else 0.0
    if log:
        log[-1].update({k: v for k, v in metrics.items() if "@" in k})
    with atomic_dir(output_dir) as folder:
        extra = {"train": asdict(config), "data": data.source, "users": data.n_users, "items": data.n_items}
        size = save_model(model, folder, masks.masks if masks else None, extra)
        save_interactions(folder, data.train, data.users, data.items)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        (folder / "size.json").write_text(json.dumps(size, indent=2) + "\n", encoding="utf-8")
        (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
        _plot(log, folder / "recall.png")
    return metrics


def _evaluate(model: Recommender, data: Interactions, device: torch.device) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        return evaluate(model.scorer(), data.train, data.test, device)
