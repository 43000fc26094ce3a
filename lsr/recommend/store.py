"""A trained recommender on disk, sparse tensors stored as only their active weights.

A model folder holds ``model.npz`` (the weights), ``config.json`` (backbone and hyper-parameters) and
``interactions.npz`` (the training matrix and raw ids: LightGCN propagates over it, MultVAE encodes users
from it, serving excludes seen items with it). A masked 2-D tensor is stored in CSR: row pointers, column
indices in the smallest unsigned type that holds them (``uint8`` for 64-dimensional embeddings) and float32
values, so a density-0.2 embedding table costs about a quarter of its dense bytes, not a mask over them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from lsr.errors import LsrError
from lsr.fsutil import atomic_file
from lsr.recommend.models import MODELS, Recommender

MODEL_FILE, CONFIG_FILE, INTERACTIONS_FILE = "model.npz", "config.json", "interactions.npz"


def _index_dtype(limit: int) -> np.dtype:
    return next(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64) if limit <= np.iinfo(t).max + 1)


def _csr(values: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The masked positions of a 2-D tensor (all of them, zeros included: the mask is the budget)."""
    rows, cols = np.nonzero(mask)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mask.shape[0]))])
    return {
        "indptr": indptr.astype(_index_dtype(mask.size + 1)),
        "indices": cols.astype(_index_dtype(mask.shape[1])),
        "values": values[rows, cols].astype(np.float32),
    }


def save_model(
    model: Recommender, folder: Path, masks: dict[str, torch.Tensor] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, int]:
    """Write ``model.npz`` and ``config.json`` into ``folder``; returns the sizes that ``size.json`` reports."""
    masks = masks or {}
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    stored = dense = 0
    for name, tensor in model.state_dict().items():
        values = tensor.detach().cpu().numpy()
        dense += values.size
        if name in masks and values.ndim == 2:
            parts = _csr(values, masks[name].cpu().numpy())
            arrays.update({f"{name}/{part}": array for part, array in parts.items()})
            shapes[name] = list(values.shape)
            stored += parts["values"].size
        else:
            arrays[name] = values
            stored += values.size
    with atomic_file(folder / MODEL_FILE, "wb") as handle:
        np.savez(handle, **arrays)
    config = {"model": model.name, "hparams": model.hparams, "sparse_shapes": shapes, **(extra or {})}
    with atomic_file(folder / CONFIG_FILE) as handle:
        json.dump(config, handle, indent=2)
    return {
        "stored_parameters": stored,
        "dense_parameters": dense,
        "bytes": (folder / MODEL_FILE).stat().st_size,
        "dense_float32_bytes": 4 * dense,
    }


def save_interactions(folder: Path, train: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> None:
    with atomic_file(folder / INTERACTIONS_FILE, "wb") as handle:
        np.savez(
            handle, indptr=train.indptr, indices=train.indices, shape=np.array(train.shape), users=users, items=items
        )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file; object arrays are refused, since reading them unpickles (may run code)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError) as exc:
        raise LsrError(f"{path}: not a readable array file ({exc})") from exc


def load_interactions(folder: Path) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The training matrix and the raw user and item ids of its rows and columns."""
    data = _read_npz(folder / INTERACTIONS_FILE)
    indices = data["indices"]
    train = sp.csr_matrix((np.ones(len(indices), np.float32), indices, data["indptr"]), shape=tuple(data["shape"]))
    return train, data["users"], data["items"]


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Recommender, dict[str, Any]]:
    """Rebuild a saved model (in eval mode) and return it with its config."""
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise LsrError(
            f"{folder}: not a trained recommender (no {MODEL_FILE} / {CONFIG_FILE}); see lsr recommend train"
        )
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    train, _, _ = load_interactions(folder)
    model = MODELS[config["model"]](train, **config["hparams"])
    state: dict[str, torch.Tensor] = {}
    arrays = _read_npz(folder / MODEL_FILE)
    for name, shape in config["sparse_shapes"].items():
        csr = sp.csr_matrix(
            (
                arrays[f"{name}/values"],
                arrays[f"{name}/indices"].astype(np.int64),
                arrays[f"{name}/indptr"].astype(np.int64),
            ),
            shape=tuple(shape),
        )
        state[name] = torch.from_numpy(csr.toarray())
    state.update({name: torch.from_numpy(array) for name, array in arrays.items() if "/" not in name})
    model.load_state_dict(state)
    return model.to(device).eval(), config
