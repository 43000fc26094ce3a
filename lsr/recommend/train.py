"""Training loop shared by the four backbones, dense or with Dynamic Sparse Learning.

Train N epochs, then evaluate once on the test split, as LightGCN reports its numbers (no early stopping
on the test set); ``eval_every`` adds intermediate test evaluations to ``log.jsonl`` for the curve only.
Negatives are sampled for a whole epoch at once on the training device, so the loop never waits on Python.

Leased GPUs cap each command (10 minutes), shorter than LightGCN's 1000 Gowalla epochs, so a run can stop
early (``time_limit``, ``stop_after``) and continue bit for bit in a later command (``resume``) from a
training checkpoint (:mod:`lsr.recommend.checkpoint`): see :func:`train`.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.recommend.checkpoint import (
    TrainingState,
    checkpoint_dir,
    fingerprint,
    finished_run,
    load_checkpoint,
    save_checkpoint,
)
from lsr.recommend.config import TrainConfig
from lsr.recommend.data import Interactions
from lsr.recommend.dsl import SparseMasks
from lsr.recommend.metrics import evaluate
from lsr.recommend.models import MODELS, Recommender
from lsr.recommend.samplers import TRIPLET_SAMPLERS, UserSampler
from lsr.recommend.store import save_interactions, save_model


def lr_at(config: TrainConfig, epoch: int) -> float:
    """The learning rate of 1-based ``epoch``: constant, or with ``lr_min`` cosine-annealed per epoch.

    The DSL authors train LightGCN at lr 0.01 annealed to 1e-4 over the planned epochs (PyTorch's
    ``CosineAnnealingLR`` stepped once per epoch, which this reproduces); LightGCN's own paper keeps 0.001.
    A function of the epoch, not scheduler state, so a resumed run continues the same schedule.
    """
    if config.lr_min is None:
        return config.lr
    return config.lr_min + (config.lr - config.lr_min) * (1 + math.cos(math.pi * (epoch - 1) / config.epochs)) / 2


def _model_class(name: str) -> type[Recommender]:
    if name not in MODELS:
        raise LsrError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def _with_sampler(config: TrainConfig) -> TrainConfig:
    """``config`` with its model's triplet sampler filled in, so ``config.json`` says which one ran and a run
    never resumes under another default; ``sampler`` stays None for MultVAE, whose batches are users."""
    model = _model_class(config.model)
    if model.sampler != "triplets":
        if config.sampler is not None:
            raise LsrError(f"{config.model} trains on batches of users: sampler {config.sampler!r} does not apply")
        return config
    if config.sampler is None:
        return replace(config, sampler=model.triplets)
    if config.sampler not in TRIPLET_SAMPLERS:
        raise LsrError(f"sampler must be one of {', '.join(TRIPLET_SAMPLERS)}, got {config.sampler!r}")
    return config


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


def _update_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """The steps in which DSL's mask moves, counted over the planned epochs however many commands they take:
    all of them, or the first ``update_until`` of them; the prune fraction's cosine decays to 0 over these."""
    return round(config.update_until * config.epochs * steps_per_epoch)


def _check_mask_updates(config: TrainConfig, steps_per_epoch: int) -> None:
    """Refuse a DSL run whose mask would never move: a schedule shorter than ΔT is a static mask in disguise
    (MovieLens-100k MultVAE, 2 steps an epoch, trained 100 steps with ΔT 100 before this check existed)."""
    if not 0 < config.update_until <= 1:
        raise LsrError(f"--update-until must be in (0, 1], got {config.update_until}")
    steps = _update_steps(config, steps_per_epoch)
    if not config.static_mask and steps <= config.update_every:  # updates come after steps ΔT, 2ΔT, ... < steps
        remedy = f"set --update-every to at most {steps - 1}" if steps > 1 else "train more epochs"
        raise LsrError(
            f"--update-every {config.update_every} leaves DSL no mask update in the {steps} steps it may move "
            f"({config.update_until:g} of {config.epochs} epochs × {steps_per_epoch} steps): {remedy}, or "
            "pass --static-mask if a fixed random mask is meant"
        )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(data: Interactions, config: TrainConfig) -> Recommender:
    return _model_class(config.model)(data.train, **config.hparams)


def train(
    data: Interactions,
    config: TrainConfig,
    output_dir: str | Path,
    progress: bool = True,
    resume: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Train, evaluate on the test split and write the model folder; returns ``metrics.json``'s content.

    A run that stops before ``config.epochs`` (``time_limit``, ``stop_after``) still writes the model folder,
    with the partial model's test metrics and ``"epochs"`` < ``"planned_epochs"`` in ``metrics.json``, and
    saves what continuing needs to :func:`checkpoint_dir` (also every ``checkpoint_every`` epochs, so a killed
    command loses at most that many). With ``resume`` a run continues from that checkpoint, or starts afresh
    without one; a finished run of the same config is returned as it is, so rerunning a command is safe. The
    combined run's ``log.jsonl`` and ``metrics.json`` are one uninterrupted run's, timings aside, and the
    checkpoint is removed once the last epoch's model is written. ``say`` gets what resuming did, for the CLI.
    """
    output_dir = Path(output_dir)
    config = _with_sampler(config)
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LsrError("--device cuda but torch sees no CUDA device")
    data_sha = fingerprint(data)
    checkpoint = checkpoint_dir(output_dir)
    if resume and (finished := finished_run(output_dir, config, data_sha)) is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)  # left when a command ends between the two writes
        say(f"{output_dir} already holds all {config.epochs} epochs of this run: nothing to train")
        return finished
    torch.manual_seed(config.seed)
    model = build(data, config).to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    sampler_type = TRIPLET_SAMPLERS[config.sampler] if model.sampler == "triplets" else UserSampler
    batch_size = config.batch_size or (2048 if model.sampler == "triplets" else 500)
    sampler = sampler_type(data.train, batch_size, device, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type == "cuda")  # fewer kernels
    masks = None
    if config.dsl:
        _check_mask_updates(config, len(sampler))
        masks = SparseMasks(
            model,
            optimizer,
            config.density,
            total_steps=_update_steps(config, len(sampler)),
            update_every=config.update_every,
            fraction=config.prune_fraction,
            regrow=config.regrow,
            static=config.static_mask,
            pooled=config.pooled_budget,
            seed=config.seed,
        )
    trainer = TrainingState(model, optimizer, masks, generator, device)
    log: list[dict[str, Any]] = []
    epoch_seconds: list[float] = []
    state = load_checkpoint(checkpoint, config, data_sha) if resume else None
    if state is not None:
        trainer.restore(state)
        log, epoch_seconds = state["log"], state["epoch_seconds"]
        say(f"resuming from {checkpoint} after epoch {len(epoch_seconds)} of {config.epochs}")
    elif resume:
        say(f"no checkpoint at {checkpoint}: training from the first epoch")
    done = len(epoch_seconds)  # by earlier commands
    began = time.perf_counter()
    epochs = range(done + 1, config.epochs + 1)
    desc = f"{config.model} epochs"
    for epoch in _progress(epochs, desc=desc, disable=not progress, initial=done, total=config.epochs):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, epoch)
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
        if config.lr_min is not None:
            row["lr"] = lr_at(config, epoch)
        if config.eval_every and epoch % config.eval_every == 0 and epoch < config.epochs:
            row.update(_evaluate(model, data, device))
        log.append(row)
        if epoch == config.epochs:
            break
        stop = bool(config.time_limit and time.perf_counter() - began > config.time_limit) or bool(
            config.stop_after and epoch - done >= config.stop_after
        )
        if stop or (config.checkpoint_every and epoch % config.checkpoint_every == 0):
            # before the final evaluation below adds the partial model's metrics to the last row
            state = {"config": asdict(config), "train_sha256": data_sha, "log": log, "epoch_seconds": epoch_seconds}
            save_checkpoint(checkpoint, {**state, **trainer.state()})
        if stop:
            break
    metrics = {**_evaluate(model, data, device), "epochs": len(epoch_seconds), "planned_epochs": config.epochs}
    metrics["loss"] = log[-1]["loss"] if log else None
    metrics["train_seconds_per_epoch"] = float(np.mean(epoch_seconds)) if epoch_seconds else 0.0
    if log:
        log[-1].update({k: v for k, v in metrics.items() if "@" in k})
    with atomic_dir(output_dir) as folder:
        extra = {
            "train": asdict(config),
            "data": data.source,
            "train_sha256": data_sha,
            "users": data.n_users,
            "items": data.n_items,
        }
        size = save_model(model, folder, masks.masks if masks else None, extra)
        save_interactions(folder, data.train, data.users, data.items)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        (folder / "size.json").write_text(json.dumps(size, indent=2) + "\n", encoding="utf-8")
        (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
        _plot(log, folder / "recall.png")
    if len(epoch_seconds) == config.epochs:
        shutil.rmtree(checkpoint, ignore_errors=True)
    return metrics


def _evaluate(model: Recommender, data: Interactions, device: torch.device) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        return evaluate(model.scorer(), data.train, data.test, device)
