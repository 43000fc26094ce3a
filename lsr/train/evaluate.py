"""Evaluation on a dev split during training: nDCG@10 with exact search, and how sparse the vectors are.

The model under training encodes the dev corpus and queries through the same
encode paths users call (so what is measured is what ships), search is an exact
sparse product, and the sparsity figures are the ones SPLADE papers report:
average non-zeros per document and per query, and FLOPS, the expected number of
multiplications per query-document pair, ``sum_j p_q(j) p_d(j)``, where ``p(j)`` is
the fraction of queries (documents) in which term ``j`` is non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from lsr.data.beir import BeirDataset
from lsr.encode.corpus import document_text
from lsr.metrics import evaluate
from lsr.models.base import SparseEncoder
from lsr.runs import Run


@dataclass
class DevResult:
    """One dev split's figures."""

    name: str
    ndcg10: float
    doc_nnz: float
    query_nnz: float
    flops: float


class ExactSearch:
    """Documents as one torch CSR matrix on ``device``, searched exactly by the sparse dot product.

    Built once per corpus and model, so several query sets (the splits of one report) share one upload: on a GPU a
    block of queries against a million documents takes milliseconds, where SciPy's sparse-times-sparse product
    took seconds per block.
    """

    def __init__(self, docs: sp.csr_matrix, dids: list[str], device: str | torch.device = "cpu") -> None:
        docs = sp.csr_matrix(docs)
        self.dids = dids
        self.device = device
        self.matrix = torch.sparse_csr_tensor(
            torch.from_numpy(docs.indptr.astype(np.int64)),
            torch.from_numpy(docs.indices.astype(np.int64)),
            torch.from_numpy(docs.data.astype(np.float32)),
            size=docs.shape,
            device=device,
        )

    def run(self, queries: sp.csr_matrix, qids: list[str], k: int, block: int = 256) -> Run:
        """Top-``k`` documents per query, ``block`` queries at a time so the dense score matrix stays small."""
        k = min(k, self.matrix.shape[0])
        if k == 0:
            return {qid: {} for qid in qids}
        run: Run = {}
        for start in range(0, len(qids), block):
            dense = np.ascontiguousarray(queries[start : start + block].toarray(), dtype=np.float32).T
            scores = (self.matrix @ torch.from_numpy(dense).to(self.device)).T
            values, rows = (t.cpu().numpy() for t in torch.topk(scores, k, dim=1))
            for i, qid in enumerate(qids[start : start + block]):
                run[qid] = {self.dids[j]: float(v) for j, v in zip(rows[i], values[i], strict=True) if v > 0}
        return run


def exact_run(
    queries: sp.csr_matrix,
    docs: sp.csr_matrix,
    qids: list[str],
    dids: list[str],
    k: int,
    block: int = 256,
    device: str | torch.device = "cpu",
) -> Run:
    """Top-``k`` documents per query by the exact sparse dot product (one query set: :class:`ExactSearch`)."""
    return ExactSearch(docs, dids, device).run(queries, qids, k, block)


def flops(queries: sp.csr_matrix, docs: sp.csr_matrix) -> float:
    """``sum_j p_q(j) p_d(j)``."""
    p_q = np.bincount(queries.indices, minlength=queries.shape[1]) / max(queries.shape[0], 1)
    p_d = np.bincount(docs.indices, minlength=docs.shape[1]) / max(docs.shape[0], 1)
    return float(p_q @ p_d)


def dev_evaluation(encoder: SparseEncoder, dataset_path: str, split: str, batch_size: int = 64) -> DevResult:
    """Encode ``dataset_path``'s corpus and ``split`` queries with ``encoder`` and score the exact top 100."""
    dataset = BeirDataset(dataset_path)
    queries, qrels = dataset.split(split)
    docs = list(dataset.corpus())
    doc_vectors = encoder.encode_document([document_text(d) for d in docs], batch_size=batch_size)
    qids = list(queries)
    query_vectors = encoder.encode_query([queries[q] for q in qids], batch_size=batch_size)
    run = exact_run(query_vectors, doc_vectors, qids, [d.id for d in docs], 100)
    result = evaluate(qrels, run, ["nDCG@10"])
    return DevResult(
        name=f"{dataset.name}:{split}",
        ndcg10=result.aggregate["nDCG@10"],
        doc_nnz=doc_vectors.nnz / max(len(docs), 1),
        query_nnz=query_vectors.nnz / max(len(qids), 1),
        flops=flops(query_vectors, doc_vectors),
    )
