"""A recommender training run's settings: what ``lsr recommend train`` records in ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """Everything a run depends on; written to ``config.json`` beside the model."""

    model: str
    epochs: int = 20
    batch_size: int | None = None  # None: 2048 for BPR-style models (LightGCN's), 500 users for MultVAE (Liang's)
    lr: float = 1e-3
    lr_min: float | None = None  # None: constant lr; else cosine-annealed per epoch from lr to lr_min (lr_at)
    density: float = 1.0
    device: str = "cpu"
    seed: int = 0
    update_every: int = 100
    prune_fraction: float = 0.5
    update_until: float = 1.0  # DSL: the mask moves in this first fraction of the planned steps (RigL's end)
    regrow: str = "gradient"
    static_mask: bool = False
    pooled_budget: bool = False  # DSL: prune and regrow across all weight tensors together (SparseMasks pooled)
    sampler: str | None = None  # triplet models: "pairs" or "users" (TRIPLET_SAMPLERS); None: the model's default
    eval_every: int = 0
    time_limit: float = 0.0  # seconds of training after which no new epoch starts (0: none); for leased GPUs
    stop_after: int = 0  # train at most this many epochs in this command, then checkpoint (0: no limit)
    checkpoint_every: int = 0  # also checkpoint every N epochs, so a killed command loses at most N (0: never)
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def dsl(self) -> bool:
        return self.density < 1.0
