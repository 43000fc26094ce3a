"""The fingerprint of an index's document ids: the same set in any order gives the same one, and a hybrid refuses
legs whose fingerprints differ (:mod:`lsr.indexing.fingerprint`)."""

from __future__ import annotations

import pytest
from lsr.indexing.filters import encoded_ids
from lsr.indexing.fingerprint import UNKNOWN, blob_fingerprint, check_same_documents, ids_fingerprint, is_fingerprint

from lsr.errors import LsrError

IDS = ["doc-1", "doc-2", "Ünïcode-3", "", "doc-10"]


def test_the_same_ids_in_any_order_give_the_same_fingerprint() -> None:
    assert ids_fingerprint(IDS) == ids_fingerprint(list(reversed(IDS))) == blob_fingerprint(*encoded_ids(IDS))
    assert ids_fingerprint(IDS).startswith("5:")


@pytest.mark.parametrize(
    "other",
    [IDS[:-1], [*IDS, "doc-11"], ["doc-1", "doc-2", "Unicode-3", "", "doc-10"], ["doc-1", "doc-2", "doc-3", "doc-10"]],
)
def test_another_set_of_ids_gives_another_fingerprint(other: list[str]) -> None:
    assert ids_fingerprint(other) != ids_fingerprint(IDS)


def test_legs_are_refused_only_where_two_known_fingerprints_differ() -> None:
    same, other = ids_fingerprint(IDS), ids_fingerprint(IDS[:2])
    check_same_documents([("sparse", same), ("dense", same), ("bm25", UNKNOWN)])
    check_same_documents([("sparse", UNKNOWN), ("dense", other)])
    with pytest.raises(LsrError, match=r"the sparse and dense retrievers hold different documents \(5 and 2 ids"):
        check_same_documents([("sparse", same), ("bm25", UNKNOWN), ("dense", other)])


def test_only_fingerprints_as_lsr_writes_them_pass_the_format_check() -> None:
    assert is_fingerprint(ids_fingerprint(IDS)) and is_fingerprint(ids_fingerprint([]))
    wrong = ("", "garbage", "5:abc", "x:" + "0" * 32, ids_fingerprint(IDS) + "\n")
    assert not any(is_fingerprint(text) for text in wrong)
    with pytest.raises(LsrError, match=r"\(\? and 5 ids"):
        check_same_documents([("mine", "a fingerprint of its own"), ("sparse", ids_fingerprint(IDS))])
