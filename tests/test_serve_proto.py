"""The checked-in gRPC stubs are what grpc_tools.protoc makes of the checked-in proto."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO
from lsr.serve.proto.generate import OUTPUTS, PROTO, generate

# the generator's own version is stamped into the stubs; a newer grpcio-tools may stamp another one
VERSION_LINES = re.compile(
    r"^(# Protobuf Python Version: .*|GRPC_GENERATED_VERSION = .*|    \d+,)$", flags=re.MULTILINE
)


def normalised(text: str) -> str:
    return VERSION_LINES.sub("<version>", text)


def test_stubs_are_in_sync_with_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is in the dev extra")
    generated = generate(tmp_path)
    assert [p.name for p in generated] == list(OUTPUTS)
    for path in generated:
        checked_in = REPO / PROTO.parent / path.name
        assert checked_in.is_file(), f"{checked_in} is missing: run python -m lsr.serve.proto.generate"
        assert normalised(path.read_text()) == normalised(checked_in.read_text()), (
            f"{checked_in} is stale: run python -m lsr.serve.proto.generate"
        )


def test_the_contract() -> None:
    from lsr.serve.proto.lsr.v1 import lsr_pb2

    assert lsr_pb2.DESCRIPTOR.package == "lsr.v1"
    request = lsr_pb2.SearchRequest.DESCRIPTOR.fields_by_name
    assert (request["query"].number, request["k"].number, request["retriever"].number) == (1, 2, 3)
    assert request["vector"].containing_oneof is request["query"].containing_oneof is not None
    hit = lsr_pb2.Hit.DESCRIPTOR.fields_by_name
    assert (hit["doc_id"].number, hit["score"].number) == (1, 2)
    assert lsr_pb2.SearchResponse.DESCRIPTOR.fields_by_name["hits"].number == 1
    services = lsr_pb2.DESCRIPTOR.services_by_name
    assert set(services["Retrieval"].methods_by_name) == {"Search", "BatchSearch", "Encode", "Stats"}
    assert set(services["Recommendation"].methods_by_name) == {"Recommend"}
