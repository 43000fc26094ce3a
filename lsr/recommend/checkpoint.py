"""Checkpoints of a recommender training run, so a run longer than one leased-GPU command continues bit for bit.

What a checkpoint holds (:class:`TrainingState`: model, optimiser, DSL masks, generator states), where it lives
(:func:`checkpoint_dir`), and what may differ when a run resumes (:data:`PER_COMMAND`): a checkpoint of another
configuration or other training data is refused (:func:`refuse_changes`), never silently continued.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.recommend.config import TrainConfig
from lsr.recommend.data import Interactions
from lsr.recommend.dsl import SparseMasks
from lsr.recommend.models import MODELS, Recommender
from lsr.recommend.store import CONFIG_FILE
from lsr.safeload import load_weights

#: Fields a resumed run may change: they steer one command (when it stops, what it logs), not what is learned.
#: ``device`` may change its index but not its type, whose generator states differ.
PER_COMMAND = frozenset({"time_limit", "stop_after", "checkpoint_every", "eval_every"})
CHECKPOINT_FILE = "state.pt"


def checkpoint_dir(output_dir: str | Path) -> Path:
    """Where a run that stopped early keeps its training state: ``OUT.checkpoint`` beside ``OUT``.

    Beside rather than inside, because ``OUT`` is written whole by :func:`~lsr.fsutil.atomic_dir` and is either
    a complete model folder or absent: periodic checkpoints are written without evaluating or storing a model,
    so inside ``OUT`` they would leave a folder holding only a checkpoint, and each model write would have to
    carry the checkpoint over into its new folder. Beside it, each is replaced atomically on its own.
    """
    output_dir = Path(output_dir)
    return output_dir.with_name(f"{output_dir.name}.checkpoint")


def fingerprint(data: Interactions) -> str:
    """SHA-256 of the training matrix's structure, so a run never resumes or skips on other data."""
    digest = hashlib.sha256()
    for array in (np.asarray(data.train.shape), data.train.indptr, data.train.indices):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


def refuse_changes(saved: dict[str, Any], saved_data: str | None, config: TrainConfig, data: str, where: Path) -> None:
    """Raise unless ``saved`` (a TrainConfig as a dict) and its data match this run's, per-command fields aside.

    Runs saved before ``sampler`` existed drew every training pair once per epoch ("pairs"; MultVAE: None);
    any other setting added since a run was saved had its default value then.
    """
    if "sampler" not in saved:
        saved = {**saved, "sampler": "pairs" if MODELS[saved["model"]].sampler == "triplets" else None}
    saved = {**asdict(TrainConfig(model=saved["model"])), **saved}
    current = asdict(config)
    changed = [k for k in current if k not in PER_COMMAND | {"device"} and saved.get(k) != current[k]]
    if torch.device(saved["device"]).type != torch.device(config.device).type:
        changed.append("device")
    reasons = [f"{k}: {saved.get(k)!r} there, {current[k]!r} now" for k in changed]
    if saved_data != data:
        reasons.append("other training data")  # or a model folder from before fingerprints: it cannot tell
    if reasons:
        raise LsrError(
            f"{where} holds a different run ({'; '.join(reasons)}): --resume continues only the same run "
            "(train without --resume to start over)"
        )


def finished_run(output_dir: Path, config: TrainConfig, data: str) -> dict[str, Any] | None:
    """``metrics.json`` of a run of this config that already trained all its epochs into ``output_dir``.

    A finished run of another config or data raises instead: resuming never overwrites finished work.
    """
    try:
        metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
        saved = json.loads((output_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if metrics["epochs"] < metrics.get("planned_epochs", math.inf):  # folders from before time limits lack it
        return None
    refuse_changes(saved["train"], saved.get("train_sha256"), config, data, output_dir)
    return metrics


@dataclass
class TrainingState:
    """What one run moves forward, and its state as a checkpoint: resuming from it continues bit for bit."""

    model: Recommender
    optimizer: torch.optim.Optimizer
    masks: SparseMasks | None
    generator: torch.Generator  # the sampler's, on the training device
    device: torch.device

    def state(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda"
        return {
            "model": self.model.state_dict(),
            "model_attributes": {name: getattr(self.model, name) for name in self.model.train_attributes},
            "optimizer": self.optimizer.state_dict(),
            "masks": self.masks.state_dict() if self.masks else None,
            "sampler_generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # MultVAE's dropout and reparameterisation noise
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`, loaded to the CPU (generator states must be CPU byte tensors)."""
        self.model.load_state_dict(state["model"])
        for name, value in state["model_attributes"].items():
            setattr(self.model, name, value)
        self.optimizer.load_state_dict(state["optimizer"])  # moves Adam's moments to the parameters' device
        if self.masks:
            self.masks.load_state_dict(state["masks"])
        self.generator.set_state(state["sampler_generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Replace the checkpoint in ``folder`` atomically: a command killed while writing leaves the previous one."""
    with atomic_dir(folder) as tmp:
        torch.save(state, tmp / CHECKPOINT_FILE)


def load_checkpoint(folder: Path, config: TrainConfig, data: str) -> dict[str, Any] | None:
    """The training state saved in ``folder`` (on the CPU, read weights-only: a crafted file runs no code), None
    without one; a checkpoint of another configuration or other training data raises (:func:`refuse_changes`)
    rather than being continued."""
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        return None
    state = load_weights(path, "train without --resume to start over")
    if not isinstance(state, dict) or not {"config", "train_sha256"} <= state.keys():
        raise LsrError(f"{path}: not an lsr recommender checkpoint; train without --resume to start over")
    refuse_changes(state["config"], state["train_sha256"], config, data, folder)
    return state
