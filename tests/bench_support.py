"""What the benchmark tests share: vectors folders in ``lsr encode``'s format, written directly or encoded by the
embedded sparse model from a BEIR folder (the input ``lsr bench engines`` and ``synthetic-stats`` read)."""

from __future__ import annotations

from pathlib import Path

import scipy.sparse as sp

from lsr.encode.shards import Manifest, write_shard


def vectors_folder(folder: Path, ids: list[str], matrix: sp.csr_matrix, model: str) -> None:
    """One complete shard of ``matrix`` under ``folder``, its manifest naming ``model``."""
    manifest = Manifest(model, "splade", False, matrix.shape[1], len(ids), {"path": "x", "member": None})
    folder.mkdir()
    manifest.shards.append(write_shard(folder, 0, ids, matrix))
    manifest.complete = True
    manifest.save(folder)


def encoded_vectors_folder(folder: Path, beir_dir: Path) -> None:
    """Every document of ``beir_dir`` encoded by the embedded sparse model, as a vectors folder at ``folder``."""
    from lsr.data.beir import BeirDataset
    from lsr.defaults import DEFAULT_SPARSE
    from lsr.encode.corpus import document_text
    from lsr.models import load_encoder

    model = str(DEFAULT_SPARSE)
    docs = list(BeirDataset(beir_dir).corpus())
    vectors = load_encoder(model, device="cpu").encode_document([document_text(d) for d in docs])
    vectors_folder(folder, [d.id for d in docs], sp.csr_matrix(vectors), model)
