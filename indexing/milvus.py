"""Serving at scale on Milvus: export documents' sparse and dense vectors, and query them through pymilvus.

Milvus does the distribution (sharding, replicas, query nodes); lsr only maps its own artefacts onto one
collection: a ``SPARSE_FLOAT_VECTOR`` field with a ``SPARSE_INVERTED_INDEX`` (inner product, exact when
searched with ``drop_ratio_search=0``) and a ``FLOAT_VECTOR`` field with an ``HNSW`` index. The same code
talks to Milvus Lite (``uri`` a local ``.db`` file, embedded, what the tests use) and to a Milvus cluster
(``uri`` ``http://host:19530`` plus a ``token``). The models that encoded the documents are recorded in
the collection's properties so that queries are encoded by the same models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from lsr.errors import LsrError
from lsr.runs import Run

META_PROPERTY = "lsr.meta"
SPARSE_FIELD = "sparse"
DENSE_FIELD = "dense"
METRICS = {"cosine": "COSINE", "dot": "IP", "ip": "IP", "euclidean": "L2", "l2": "L2"}


def client(uri: str, token: str | None = None) -> Any:
    """A pymilvus client for Milvus Lite (a ``.db`` path) or a server/cluster (``http://...``)."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise LsrError("Milvus needs pymilvus (and milvus-lite for a local file): pip install 'lsr[scale]'") from exc
    if "://" not in uri and not uri.endswith(".db"):
        raise LsrError(f"--uri {uri!r}: give a Milvus Lite file ending in .db, or a server address http://host:port")
    return MilvusClient(uri, **({"token": token} if token else {}))


def _sparse_rows(source: Path) -> tuple[Iterator[tuple[str, sp.csr_matrix]], dict[str, Any]]:
    """Rows of a sparse index (its decoded, float16-exact weights: Milvus then ranks exactly as the index
    does) or of a sparse vectors folder, in corpus order."""
    if (source / "meta.json").is_file():
        from lsr.indexing.sparse.format import SparseIndex

        index = SparseIndex.open(source)
        matrix = index.to_csr()

        def from_index() -> Iterator[tuple[str, sp.csr_matrix]]:
            for row in range(index.num_docs):
                yield index.doc_id(row), matrix[row]

        meta = {"model": index.meta.model, "kind": index.meta.model_kind, "dimension": index.meta.vocab_size}
        return from_index(), meta
    from lsr.encode.shards import Manifest, iter_shards

    manifest = Manifest.load(source)
    if manifest.dense:
        raise LsrError(f"{source} holds dense vectors; give it as --dense")

    def from_shards() -> Iterator[tuple[str, sp.csr_matrix]]:
        for ids, vectors in iter_shards(source):
            for row, ident in enumerate(ids):
                yield ident, vectors[row]

    return from_shards(), {"model": manifest.model, "kind": manifest.kind, "dimension": manifest.dimension}


def _dense_rows(source: Path, metric: str) -> tuple[Iterator[tuple[str, np.ndarray]], dict[str, Any]]:
    from lsr.encode.shards import Manifest, iter_shards

    manifest = Manifest.load(source)
    if not manifest.dense:
        raise LsrError(f"{source} holds sparse vectors; give it as --sparse")
    if metric == "auto":
        from lsr.models import load_encoder

        metric = load_encoder(manifest.model, device="cpu").similarity
    if metric.lower() not in METRICS:
        raise LsrError(f"dense metric {metric!r}: choose one of {', '.join(sorted(METRICS))}")

    def rows() -> Iterator[tuple[str, np.ndarray]]:
        for ids, vectors in iter_shards(source):
            yield from zip(ids, vectors, strict=True)

    return rows(), {"model": manifest.model, "dimension": manifest.dimension, "metric": METRICS[metric.lower()]}


def export_milvus(
    uri: str,
    collection: str,
    sparse: Path | None = None,
    dense: Path | None = None,
    dense_metric: str = "auto",
    overwrite: bool = False,
    batch: int = 1000,
    token: str | None = None,
    hnsw: tuple[int, int] = (16, 200),
) -> int:
    """Write every document (id, sparse and/or dense vector) into a new Milvus collection; returns the count.

    ``sparse`` is a sparse index folder or sparse vectors folder, ``dense`` a dense vectors folder, both of
    the same corpus (their ids must come in the same order; they do for folders made from one corpus).
    Documents with an empty sparse vector are left out of a sparse-only collection: they can match nothing."""
    from pymilvus import DataType, MilvusClient

    if sparse is None and dense is None:
        raise LsrError("give --sparse (an index or vectors folder) and/or --dense (a vectors folder)")
    milvus = client(uri, token)
    if milvus.has_collection(collection):
        if not overwrite:
            raise LsrError(f"collection {collection!r} exists at {uri}; pass --overwrite to replace it")
        milvus.drop_collection(collection)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    index_params = milvus.prepare_index_params()
    meta: dict[str, Any] = {}
    sparse_rows = dense_rows = None
    if sparse is not None:
        sparse_rows, meta["sparse"] = _sparse_rows(Path(sparse))
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        index_params.add_index(SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    if dense is not None:
        dense_rows, meta["dense"] = _dense_rows(Path(dense), dense_metric)
        schema.add_field(DENSE_FIELD, DataType.FLOAT_VECTOR, dim=meta["dense"]["dimension"])
        params = {"M": hnsw[0], "efConstruction": hnsw[1]}
        index_params.add_index(DENSE_FIELD, index_type="HNSW", metric_type=meta["dense"]["metric"], params=params)
    milvus.create_collection(collection, schema=schema, properties={META_PROPERTY: json.dumps(meta)})
    count = 0
    pending: list[dict[str, Any]] = []
    for row in _aligned(sparse_rows, dense_rows):
        if DENSE_FIELD not in row and row[SPARSE_FIELD].nnz == 0:
            continue
        pending.append(row)
        if len(pending) == batch:
            count += milvus.insert(collection, pending)["insert_count"]
            pending = []
    if pending:
        count += milvus.insert(collection, pending)["insert_count"]
    milvus.create_index(collection, index_params)
    milvus.flush(collection)
    return count


def _aligned(
    sparse_rows: Iterator[tuple[str, sp.csr_matrix]] | None, dense_rows: Iterator[tuple[str, np.ndarray]] | None
) -> Iterator[dict[str, Any]]:
    if sparse_rows is not None and dense_rows is not None:
        for (sid, svec), (did, dvec) in zip(sparse_rows, dense_rows, strict=True):
            if sid != did:
                raise LsrError(f"sparse and dense sources disagree: document {sid!r} against {did!r}; same corpus?")
            yield {"id": sid, SPARSE_FIELD: svec, DENSE_FIELD: dvec}
    elif sparse_rows is not None:
        for ident, vec in sparse_rows:
            yield {"id": ident, SPARSE_FIELD: vec}
    else:
        assert dense_rows is not None
        for ident, vec in dense_rows:
            yield {"id": ident, DENSE_FIELD: vec}


class MilvusRetriever:
    """Sparse, dense and hybrid (Milvus's RRF or weighted ranker) search over an exported collection."""

    def __init__(self, uri: str, collection: str, token: str | None = None, batch: int = 256) -> None:
        self.milvus = client(uri, token)
        if not self.milvus.has_collection(collection):
            raise LsrError(f"no collection {collection!r} at {uri}; create it with lsr export milvus")
        self.collection = collection
        self.batch = batch
        properties = self.milvus.describe_collection(collection).get("properties", {})
        if META_PROPERTY not in properties:
            raise LsrError(f"collection {collection!r} was not written by lsr export milvus (no {META_PROPERTY})")
        self.meta: dict[str, Any] = json.loads(properties[META_PROPERTY])
        self.milvus.load_collection(collection)

    def _need(self, field: str) -> dict[str, Any]:
        if field not in self.meta:
            raise LsrError(f"collection {self.collection!r} holds no {field} vectors")
        return self.meta[field]

    def _hits(self, results: Any) -> list[list[tuple[str, float]]]:
        return [[(hit["id"], float(hit["distance"])) for hit in hits] for hits in results]

    def search_sparse(self, queries: sp.csr_matrix, k: int = 10) -> list[list[tuple[str, float]]]:
        """Exact inner-product top-k (``drop_ratio_search`` 0: no query term is dropped)."""
        self._need("sparse")
        queries = sp.csr_matrix(queries, dtype=np.float32)
        out: list[list[tuple[str, float]]] = []
        params = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}
        for start in range(0, queries.shape[0], self.batch):
            rows = [queries[i] for i in range(start, min(start + self.batch, queries.shape[0]))]
            # an empty query cannot be sent; it matches nothing, as in lsr's own index
            live = [i for i, r in enumerate(rows) if r.nnz]
            got = self._hits(
                self.milvus.search(
                    self.collection,
                    data=[rows[i] for i in live],
                    anns_field=SPARSE_FIELD,
                    limit=k,
                    search_params=params,
                    output_fields=["id"],
                )
                if live
                else []
            )
            block: list[list[tuple[str, float]]] = [[] for _ in rows]
            for i, hits in zip(live, got, strict=True):
                block[i] = [h for h in hits if h[1] > 0]
            out += block
        return out

    def search_dense(self, embeddings: np.ndarray, k: int = 10, ef: int = 128) -> list[list[tuple[str, float]]]:
        """Approximate (HNSW) top-k; ``ef`` (at least ``k``) trades speed for recall."""
        meta = self._need("dense")
        params = {"metric_type": meta["metric"], "params": {"ef": max(ef, k)}}
        out: list[list[tuple[str, float]]] = []
        embeddings = np.asarray(embeddings, dtype=np.float32)
        for start in range(0, len(embeddings), self.batch):
            data = list(embeddings[start : start + self.batch])
            out += self._hits(
                self.milvus.search(
                    self.collection,
                    data=data,
                    anns_field=DENSE_FIELD,
                    limit=k,
                    search_params=params,
                    output_fields=["id"],
                )
            )
        return out

    def search_hybrid(
        self,
        queries: sp.csr_matrix,
        embeddings: np.ndarray,
        k: int = 10,
        ranker: str = "rrf",
        weights: tuple[float, float] = (0.5, 0.5),
        rrf_k: int = 60,
        candidates: int = 100,
        ef: int = 128,
    ) -> list[list[tuple[str, float]]]:
        """Sparse and dense candidates (``candidates`` each) fused inside Milvus by RRF or a weighted sum."""
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        self._need("sparse")
        dense = self._need("dense")
        if ranker not in ("rrf", "weighted"):
            raise LsrError(f"ranker {ranker!r}: choose rrf or weighted")
        fuse = RRFRanker(rrf_k) if ranker == "rrf" else WeightedRanker(*weights)
        queries = sp.csr_matrix(queries, dtype=np.float32)
        embeddings = np.asarray(embeddings, dtype=np.float32)
        out: list[list[tuple[str, float]]] = []
        for i in range(queries.shape[0]):  # one query a call: Milvus rejects an empty sparse query in a batch
            requests = [
                AnnSearchRequest(
                    [embeddings[i]], DENSE_FIELD, {"metric_type": dense["metric"], "params": {"ef": ef}}, candidates
                )
            ]
            if queries[i].nnz:
                sparse_params = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}
                requests.insert(0, AnnSearchRequest([queries[i]], SPARSE_FIELD, sparse_params, candidates))
            if len(requests) == 1:
                fuse_one = RRFRanker(rrf_k) if ranker == "rrf" else WeightedRanker(weights[1])
                out += self._hits(self.milvus.hybrid_search(self.collection, requests, fuse_one, limit=k))
            else:
                out += self._hits(
                    self.milvus.hybrid_search(self.collection, requests, fuse, limit=k, output_fields=["id"])
                )
        return out

    def run(
        self, queries: dict[str, str], k: int = 10, retriever: str = "sparse", device: str = "cpu", **options: Any
    ) -> Run:
        """Encode ``queries`` with the collection's own models and search with the retriever of that name: the
        collection's ``sparse`` or ``dense`` vectors, or their ``hybrid`` fused inside Milvus."""
        from lsr.indexing.retrieval import Hybrid

        from lsr.models import load_encoder

        names = [field for field in (SPARSE_FIELD, DENSE_FIELD) if field in self.meta]
        if retriever not in [*names, Hybrid.name]:
            raise LsrError(f"retriever {retriever!r}: collection {self.collection!r} has {', '.join(names)}")
        ids = list(queries)
        texts = [queries[q] for q in ids]
        if retriever in ("sparse", "hybrid"):
            sparse = load_encoder(self._need("sparse")["model"], device=device).encode_query(texts)
        if retriever in ("dense", "hybrid"):
            dense = load_encoder(self._need("dense")["model"], device=device).encode_query(texts)
        if retriever == "sparse":
            hits = self.search_sparse(sparse, k)
        elif retriever == "dense":
            hits = self.search_dense(dense, k, **options)
        else:
            hits = self.search_hybrid(sparse, dense, k, **options)
        return {qid: dict(h) for qid, h in zip(ids, hits, strict=True)}
