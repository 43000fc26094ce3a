"""A small Python client for an lsr server (what ``lsr query`` and the load test use).

>>> with Client("127.0.0.1:50051") as client:
...     for doc_id, score in client.search("what is an inverted index", k=5):
...         print(doc_id, score)

Errors arrive as :class:`grpc.RpcError` with the server's status code and message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import grpc
from lsr.serve.proto.lsr.v1 import lsr_pb2, lsr_pb2_grpc

Hits = list[tuple[str, float]]
QueryInput = str | tuple[Sequence[int], Sequence[float]]
"""A query as text, or as a sparse vector already encoded with the index's model: (term ids, weights)."""


class Client:
    """One channel to a server; the methods are thread-safe (gRPC channels are)."""

    def __init__(
        self,
        address: str,
        token: str | None = None,
        tls_ca: Path | bytes | None = None,
        timeout: float | None = 30.0,
        tls: bool | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """``tls_ca``: the PEM root certificate to trust (a self-signed server certificate itself); with
        ``tls`` True and no ``tls_ca``, the system's roots. ``timeout``: the deadline of each call, seconds."""
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls_ca is not None or tls:
            roots = tls_ca.read_bytes() if isinstance(tls_ca, Path) else tls_ca
            self.channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.timeout = timeout
        self.retrieval = lsr_pb2_grpc.RetrievalStub(self.channel)
        self.recommendation = lsr_pb2_grpc.RecommendationStub(self.channel)

    def _call(self, method, request):  # noqa: ANN001, ANN202 - a stub method and its message
        return method(request, timeout=self.timeout, metadata=self.metadata)

    @staticmethod
    def request(
        query: QueryInput,
        k: int = 10,
        retriever: str = "",
        doc_ids: Sequence[str] = (),
        exclude_doc_ids: Sequence[str] = (),
        fusion: str = "",
        weights: Sequence[float] = (),
    ) -> lsr_pb2.SearchRequest:
        """A SearchRequest from text, or from a sparse vector given as (term ids, weights); ``retriever`` empty: the
        server's default (sparse, or its first retriever)."""
        fields = dict(
            k=k, retriever=retriever, doc_ids=doc_ids, exclude_doc_ids=exclude_doc_ids, fusion=fusion, weights=weights
        )
        if isinstance(query, str):
            return lsr_pb2.SearchRequest(query=query, **fields)
        indices, values = query
        return lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=indices, values=values), **fields)

    def search(self, query: QueryInput, k: int = 10, **options) -> Hits:  # noqa: ANN003
        """Top ``k`` (doc id, score) for text or a sparse vector; options as :meth:`request`."""
        response = self._call(self.retrieval.Search, self.request(query, k, **options))
        return [(hit.doc_id, hit.score) for hit in response.hits]

    def search_future(
        self,
        query: QueryInput,
        k: int = 10,
        **options,  # noqa: ANN003
    ) -> grpc.Future:
        """Start a Search and return at once (an open-loop load generator must not wait for the reply before sending
        the next); the future's ``result()`` is the SearchResponse, its ``code()`` the status. Options as
        :meth:`request`."""
        request = self.request(query, k, **options)
        return self.retrieval.Search.future(request, timeout=self.timeout, metadata=self.metadata)

    def batch_search(self, queries: Sequence[QueryInput], k: int = 10, **options) -> list[Hits]:  # noqa: ANN003
        """Several queries (texts, sparse vectors, or both) in one call (the server searches them as one batch)."""
        request = lsr_pb2.BatchSearchRequest(requests=[self.request(q, k, **options) for q in queries])
        response = self._call(self.retrieval.BatchSearch, request)
        return [[(hit.doc_id, hit.score) for hit in r.hits] for r in response.responses]

    def encode(self, texts: Sequence[str], with_tokens: bool = False) -> list[dict[str, list]]:
        """Sparse vectors of ``texts`` as the server encodes queries: ``{"indices", "values"[, "tokens"]}``."""
        response = self._call(self.retrieval.Encode, lsr_pb2.EncodeRequest(texts=texts, with_tokens=with_tokens))
        out = []
        for vector in response.vectors:
            entry = {"indices": list(vector.indices), "values": list(vector.values)}
            if with_tokens:
                entry["tokens"] = list(vector.tokens)
            out.append(entry)
        return out

    def stats(self) -> lsr_pb2.StatsResponse:
        return self._call(self.retrieval.Stats, lsr_pb2.StatsRequest())

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> Hits:
        """Top ``k`` (item id, score) for a user of the server's recommender."""
        request = lsr_pb2.RecommendRequest(user_id=user_id, k=k, exclude_seen=exclude_seen)
        return [(item.item_id, item.score) for item in self._call(self.recommendation.Recommend, request).items]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the channel is connected (grpc.FutureTimeoutError after ``timeout`` seconds)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
