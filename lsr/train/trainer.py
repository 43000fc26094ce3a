"""The training loop: distillation and contrastive ranking losses with (IDF-aware) FLOPS, on GPU or CPU.

Each step encodes ``B`` queries and their groups of ``n`` documents, scores every
query against every document of the batch (so other queries' documents are
in-batch negatives) and combines:

* KL distillation of each query's own group towards the teacher ensemble's
  distribution (combined scores / ``teacher_temperature``);
* InfoNCE with the positive against hard and in-batch negatives;
* optionally MarginMSE between the student's and the ensemble's positive-negative margins;
* the document regulariser (FLOPS, or IDF-aware FLOPS for inference-free models; or
  L1 with ``regularizer="l1"``) and, for siamese SPLADE, the same on queries, with
  SPLADE's quadratic warm-up of λ (the log's ``flops_d``/``flops_q`` hold the value used).

bf16 autocast on the GPU, gradient accumulation, gradient clipping, linear warm-up
and decay. Checkpoints (``OUT/checkpoints/step-N``) are encoder folders in Hugging
Face layout plus ``trainer_state.pt`` (tensors and plain containers, read back weights-only, so a crafted
checkpoint cannot run code); ``resume`` continues from the latest, so a
run can be split over several time-limited jobs (``max_minutes`` saves and stops
cleanly). With dev splits the best checkpoint by mean nDCG@10 is kept as
``OUT/model``, the starting model (evaluated at step 0) among them, so training further never keeps weights
that score below where it began; without, ``OUT/model`` is the last. ``OUT/log.jsonl`` has the losses,
λ, FLOPS and active dimensions, and ``OUT/training.png`` plots them.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from tqdm.auto import tqdm

from lsr.errors import LsrError
from lsr.fsutil import atomic_file, claim_dir
from lsr.safeload import load_weights
from lsr.train.data import Batch, TrainingSet
from lsr.train.evaluate import DevResult, dev_evaluation
from lsr.train.losses import RegularizerSchedule, flops, idf_aware_flops, infonce, kl_distillation, l1, margin_mse
from lsr.train.student import Student

STATE_FILE = "trainer_state.pt"
console = Console(stderr=True)


@dataclass
class TrainConfig:
    """Every knob of a run, saved to ``OUT/train_config.json``."""

    steps: int = 1000
    batch_size: int = 32
    group_size: int = 8
    negative_depth: int = 30
    grad_accum: int = 1
    lr: float = 5e-5
    idf_lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    kl_weight: float = 1.0
    nce_weight: float = 1.0
    margin_weight: float = 0.0
    teacher_temperature: float = 0.05
    lambda_d: float = 1e-3
    lambda_q: float = 1e-3
    lambda_warmup: int = 1000
    idf_power: float = 1.0
    regularizer: str = "flops"
    eval_every: int = 500
    save_every: int = 500
    log_every: int = 20
    max_minutes: float | None = None
    precision: str = "auto"
    seed: int = 0
    dev: list[str] = field(default_factory=list)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def dev_split(spec: str) -> tuple[str, str]:
    """``DIR[:SPLIT]`` as ``(DIR, SPLIT)``; the split defaults to ``dev``."""
    path, _, split = spec.rpartition(":")
    return (path, split) if path and "/" not in split else (spec, "dev")


class Trainer:
    """Trains ``student`` on ``data`` into ``output``; see the module docstring."""

    def __init__(self, student: Student, data: TrainingSet, output: str | Path, config: TrainConfig) -> None:
        if config.regularizer not in ("flops", "l1"):
            raise LsrError(f"unknown regularizer {config.regularizer!r}; choose flops or l1")
        self.student, self.data, self.config = student, data, config
        self.output = Path(output)
        self.step = 0
        self.best, self.best_step = -math.inf, -1  # best mean dev nDCG@10 so far, and its step
        groups = [{"params": list(student.backbone_parameters()), "lr": config.lr}]
        if student.inference_free and student.idf.requires_grad:
            groups.append({"params": [student.idf], "lr": config.idf_lr, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.lambda_d = RegularizerSchedule(config.lambda_d, config.lambda_warmup)
        self.lambda_q = RegularizerSchedule(config.lambda_q, config.lambda_warmup)

    def _lr_factor(self, step: int) -> float:
        warmup = self.config.warmup_steps
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (self.config.steps - step) / max(1, self.config.steps - warmup))

    # -- one step -----------------------------------------------------------------------------------------
    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """All loss terms of one batch (the total under ``loss``)."""
        student, config = self.student, self.config
        n = self.data.group_size
        queries = student.queries(batch.queries).float()
        docs = student.documents(batch.documents).float()
        scores = queries @ docs.T  # [B, B * n]
        size = len(batch.queries)
        own = scores.view(size, size, n)[torch.arange(size), torch.arange(size)]
        teacher = batch.teacher.to(scores.device) / config.teacher_temperature
        kl = kl_distillation(own, teacher)
        nce = infonce(scores, labels=torch.arange(size, device=scores.device) * n)
        if config.regularizer == "l1":
            reg_d = l1(docs)
        elif student.inference_free:
            reg_d = idf_aware_flops(docs, student.idf, config.idf_power)
        else:
            reg_d = flops(docs)
        loss = config.kl_weight * kl + config.nce_weight * nce + self.lambda_d(self.step) * reg_d
        parts = {"kl": kl, "nce": nce, "flops_d": reg_d}
        if config.margin_weight > 0 and n > 1:
            parts["margin"] = margin_mse(own[:, :1], own[:, 1:], teacher[:, :1], teacher[:, 1:])
            loss = loss + config.margin_weight * parts["margin"]
        if not student.inference_free:
            parts["flops_q"] = l1(queries) if config.regularizer == "l1" else flops(queries)
            loss = loss + self.lambda_q(self.step) * parts["flops_q"]
        with torch.no_grad():
            parts["active_d"] = (docs > 0).sum(1).float().mean()
            parts["active_q"] = (queries > 0).sum(1).float().mean()
        parts["loss"] = loss
        return parts

    def train_step(self, batches: Iterator[Batch]) -> dict[str, float]:
        """One optimiser step over ``grad_accum`` batches; returns the averaged loss terms."""
        self.student.train()
        totals: dict[str, float] = {}
        for _ in range(self.config.grad_accum):
            with _autocast(self.student.device, self.config.precision):
                parts = self.losses(next(batches))
            if not torch.isfinite(parts["loss"]):
                raise LsrError(
                    f"training loss is {float(parts['loss'])} at step {self.step + 1}: lower the learning rate"
                )
            (parts["loss"] / self.config.grad_accum).backward()
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) / self.config.grad_accum
        torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return totals

    # -- evaluation, checkpoints, logs ---------------------------------------------------------------------
    def evaluate(self) -> list[DevResult]:
        self.student.eval()
        self.student.sync()
        with _autocast(self.student.device, self.config.precision):
            return [dev_evaluation(self.student.encoder, *dev_split(spec)) for spec in self.config.dev]

    def save_checkpoint(self) -> Path:
        """Write ``step-N``: the encoder (safetensors) and a trainer state of tensors and plain containers only,
        which :meth:`load_state` reads weights-only."""
        folder = self.output / "checkpoints" / f"step-{self.step}"
        self.student.save_pretrained(folder)
        state = {
            "step": self.step,
            "best": self.best,
            "best_step": self.best_step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        with atomic_file(folder / STATE_FILE, "wb") as handle:  # last: its presence marks a complete checkpoint
            torch.save(state, handle)
        for old in sorted(self.output.glob("checkpoints/step-*"), key=_step_of)[:-2]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def load_state(self, folder: Path) -> None:
        """Continue from a checkpoint's optimiser and schedule, read weights-only so a crafted file runs no code."""
        path, remedy = folder / STATE_FILE, f"remove {folder.parent} and train without --resume to start over"
        state = load_weights(path, remedy, self.student.device)
        if not isinstance(state, dict) or not {"step", "best", "optimizer", "scheduler"} <= state.keys():
            raise LsrError(f"{path}: not an lsr trainer state; {remedy}")
        self.step, self.best = state["step"], state["best"]
        self.best_step = state.get("best_step", -1)  # absent from checkpoints written before it was kept
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def _log(self, record: dict) -> None:
        with open(self.output / "log.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def _evaluate_and_keep(self) -> None:
        results = self.evaluate()
        mean = sum(r.ndcg10 for r in results) / len(results)
        self._log({"step": self.step, "eval": [asdict(r) for r in results], "mean_ndcg10": mean})
        shown = ", ".join(f"{r.name} nDCG@10 {r.ndcg10:.4f} (doc nnz {r.doc_nnz:.0f})" for r in results)
        console.print(f"step {self.step}: {shown}")
        if mean > self.best:
            self.best, self.best_step = mean, self.step
            self.student.save_pretrained(self.output / "model")

    # -- the loop ------------------------------------------------------------------------------------------
    def train(self) -> Path:
        """Run to ``config.steps`` (or until ``max_minutes``); returns the folder of the kept model."""
        config = self.config
        claim_dir(self.output)
        with atomic_file(self.output / "train_config.json") as handle:
            json.dump(asdict(config), handle, indent=2)
        torch.manual_seed(config.seed + self.step)
        batches = self.data.batches(config.batch_size, config.seed + self.step)
        if config.dev and self.step == 0:  # the start is a candidate too (a fresh run, not a resumed one)
            self._evaluate_and_keep()
        started = time.perf_counter()
        with tqdm(total=config.steps, initial=self.step, desc="train", unit=" steps") as bar:
            while self.step < config.steps:
                parts = self.train_step(batches)
                bar.update(1)
                if self.step % config.log_every == 0 or self.step in (1, config.steps):
                    lam = {"lambda_d": self.lambda_d(self.step), "lr": self.scheduler.get_last_lr()[0]}
                    self._log({"step": self.step, **parts, **lam, "seconds": time.perf_counter() - started})
                    bar.set_postfix(loss=f"{parts['loss']:.3f}", docs=f"{parts['active_d']:.0f}")
                if config.dev and self.step % config.eval_every == 0:
                    self._evaluate_and_keep()
                out_of_time = config.max_minutes is not None and time.perf_counter() - started > 60 * config.max_minutes
                if self.step % config.save_every == 0 or out_of_time:
                    self.save_checkpoint()
                if out_of_time:
                    console.print(f"time limit reached at step {self.step}: resume with --resume")
                    break
        if self.step >= config.steps:
            if config.dev and self.step % config.eval_every:
                self._evaluate_and_keep()
            if not config.dev:
                self.student.save_pretrained(self.output / "model")
            self.save_checkpoint()
            if config.dev and self.best_step == 0:
                console.print("no step beat the starting model on the dev splits: the kept model is the start")
        from lsr.train.plot import plot_log

        plot_log(self.output / "log.jsonl", self.output / "training.png")
        return self.output / "model"


def _step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def latest_checkpoint(output: str | Path) -> Path | None:
    """The newest ``OUT/checkpoints/step-N`` with a trainer state, if any."""
    found = [p for p in Path(output).glob("checkpoints/step-*") if (p / STATE_FILE).is_file()]
    return max(found, key=_step_of) if found else None


def checkpoint_step(output: str | Path) -> int:
    """The step of the newest complete checkpoint in ``output`` (0 when there is none)."""
    latest = latest_checkpoint(output)
    return _step_of(latest) if latest else 0


def check_dev(specs: Sequence[str]) -> None:
    """Fail before training when a dev split cannot be read."""
    from lsr.data.beir import BeirDataset

    for spec in specs:
        path, split = dev_split(spec)
        if split not in BeirDataset(path).splits():
            raise LsrError(f"--dev {spec}: {path} has no {split!r} split")
