"""Top-k recommendations from a stored model: an HNSW index of item embeddings for dot-product models.

MF and LightGCN score ``user · item``, so their item vectors (LightGCN's after propagation) go into an
inner-product HNSW index, built on the first request and kept beside the model (``items.hnsw``). NeuMF and
MultVAE scores are not inner products: they are scored exhaustively. Items the user has already
interacted with are never recommended: the index is asked for ``k + seen`` neighbours and the seen removed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lsr.errors import LsrError
from lsr.fsutil import atomic_file
from lsr.recommend.store import load_interactions, load_model

INDEX_FILE = "items.hnsw"


class UnknownUser(LsrError):
    """The user id is not in the model's training data."""


class Server:
    """A loaded model folder answering ``recommend(user_id, k)`` with raw item ids and scores."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.model, self.config = load_model(self.folder)
        self.train, users, self.items = load_interactions(self.folder)
        self.user_index = {str(u): i for i, u in enumerate(users)}
        self._index = None
        if self.model.dot_product:
            with torch.no_grad():
                user_vecs, item_vecs = self.model.embeddings()
            self.user_vecs, self.item_vecs = user_vecs.detach().numpy(), item_vecs.detach().numpy()

    def method(self, exact: bool = False) -> str:
        return "HNSW, inner product" if self.model.dot_product and not exact else "exhaustive scoring"

    def index(self):  # noqa: ANN201 - hnswlib.Index, imported lazily
        """The HNSW index of item vectors, loaded from the model folder or built and saved there."""
        if self._index is None:
            import hnswlib

            index = hnswlib.Index(space="ip", dim=self.item_vecs.shape[1])
            path = self.folder / INDEX_FILE
            if path.is_file():
                index.load_index(str(path), max_elements=len(self.item_vecs))
            else:
                index.init_index(max_elements=len(self.item_vecs), ef_construction=200, M=16)
                index.add_items(self.item_vecs, np.arange(len(self.item_vecs)))
                with atomic_file(path, "wb") as handle:  # hnswlib writes by name: into the temporary file
                    index.save_index(handle.name)
            self._index = index
        return self._index

    def recommend(
        self, user: str, k: int = 10, exact: bool = False, exclude_seen: bool = True
    ) -> list[tuple[str, float]]:
        """The ``k`` best items for ``user`` (a raw id), best first, with their scores; items the user interacted
        with in training are left out unless ``exclude_seen`` is False."""
        if user not in self.user_index:
            raise UnknownUser(f"unknown user {user!r}: not in the training data of {self.folder}")
        row = self.user_index[user]
        seen = set(self.train.indices[self.train.indptr[row] : self.train.indptr[row + 1]].tolist())
        if not exclude_seen:
            seen = set()
        wanted = min(k, self.train.shape[1] - len(seen))
        if self.model.dot_product and not exact:
            index = self.index()
            fetch = min(wanted + len(seen), self.train.shape[1])
            index.set_ef(max(fetch, 100))
            labels, _ = index.knn_query(self.user_vecs[row : row + 1], k=fetch)
            items = np.array([i for i in labels[0] if i not in seen][:wanted], dtype=np.int64)
            scores = self.item_vecs[items] @ self.user_vecs[row]
        else:
            with torch.no_grad():
                all_scores = self.model.score(torch.tensor([row]))[0]
            all_scores[list(seen)] = -torch.inf
            top = torch.topk(all_scores, wanted)
            items, scores = top.indices.numpy(), top.values.numpy()
        return [(str(self.items[i]), float(s)) for i, s in zip(items, scores, strict=True)]
