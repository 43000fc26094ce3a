from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SparseVector(_message.Message):
    __slots__ = ("indices", "values", "tokens")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    indices: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, indices: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "vector", "k", "retriever", "doc_ids", "exclude_doc_ids", "fusion", "weights")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    RETRIEVER_FIELD_NUMBER: _ClassVar[int]
    DOC_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DOC_IDS_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    query: str
    vector: SparseVector
    k: int
    retriever: str
    doc_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_doc_ids: _containers.RepeatedScalarFieldContainer[str]
    fusion: str
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, query: _Optional[str] = ..., vector: _Optional[_Union[SparseVector, _Mapping]] = ..., k: _Optional[int] = ..., retriever: _Optional[str] = ..., doc_ids: _Optional[_Iterable[str]] = ..., exclude_doc_ids: _Optional[_Iterable[str]] = ..., fusion: _Optional[str] = ..., weights: _Optional[_Iterable[float]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("doc_id", "score")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    score: float
    def __init__(self, doc_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "retriever")
    HITS_FIELD_NUMBER: _ClassVar[int]
    RETRIEVER_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    retriever: str
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., retriever: _Optional[str] = ...) -> None: ...

class BatchSearchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SearchRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[SearchRequest, _Mapping]]] = ...) -> None: ...

class BatchSearchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[SearchResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[SearchResponse, _Mapping]]] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("texts", "with_tokens")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    WITH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    with_tokens: bool
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., with_tokens: _Optional[bool] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("vectors", "vocab_size", "model")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[SparseVector]
    vocab_size: int
    model: str
    def __init__(self, vectors: _Optional[_Iterable[_Union[SparseVector, _Mapping]]] = ..., vocab_size: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MethodStats(_message.Message):
    __slots__ = ("requests", "errors", "p50_ms", "p99_ms")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    def __init__(self, requests: _Optional[int] = ..., errors: _Optional[int] = ..., p50_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ...) -> None: ...

class BatcherStats(_message.Message):
    __slots__ = ("name", "batches", "items", "largest", "expired")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    LARGEST_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    name: str
    batches: int
    items: int
    largest: int
    expired: int
    def __init__(self, name: _Optional[str] = ..., batches: _Optional[int] = ..., items: _Optional[int] = ..., largest: _Optional[int] = ..., expired: _Optional[int] = ...) -> None: ...

class RetrieverInfo(_message.Message):
    __slots__ = ("name", "num_docs", "corpus")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_DOCS_FIELD_NUMBER: _ClassVar[int]
    CORPUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    num_docs: int
    corpus: str
    def __init__(self, name: _Optional[str] = ..., num_docs: _Optional[int] = ..., corpus: _Optional[str] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("model", "num_docs", "vocab_size", "retrievers", "dense_model", "dense_docs", "recommender", "methods", "batchers", "in_flight", "uptime_seconds", "rss_bytes", "corpus", "legs")
    class MethodsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MethodStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MethodStats, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NUM_DOCS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVERS_FIELD_NUMBER: _ClassVar[int]
    DENSE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DENSE_DOCS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDER_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    BATCHERS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CORPUS_FIELD_NUMBER: _ClassVar[int]
    LEGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    num_docs: int
    vocab_size: int
    retrievers: _containers.RepeatedScalarFieldContainer[str]
    dense_model: str
    dense_docs: int
    recommender: bool
    methods: _containers.MessageMap[str, MethodStats]
    batchers: _containers.RepeatedCompositeFieldContainer[BatcherStats]
    in_flight: int
    uptime_seconds: float
    rss_bytes: int
    corpus: str
    legs: _containers.RepeatedCompositeFieldContainer[RetrieverInfo]
    def __init__(self, model: _Optional[str] = ..., num_docs: _Optional[int] = ..., vocab_size: _Optional[int] = ..., retrievers: _Optional[_Iterable[str]] = ..., dense_model: _Optional[str] = ..., dense_docs: _Optional[int] = ..., recommender: _Optional[bool] = ..., methods: _Optional[_Mapping[str, MethodStats]] = ..., batchers: _Optional[_Iterable[_Union[BatcherStats, _Mapping]]] = ..., in_flight: _Optional[int] = ..., uptime_seconds: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., corpus: _Optional[str] = ..., legs: _Optional[_Iterable[_Union[RetrieverInfo, _Mapping]]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "k", "exclude_seen")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SEEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    exclude_seen: bool
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., exclude_seen: _Optional[bool] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("item_id", "score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...
