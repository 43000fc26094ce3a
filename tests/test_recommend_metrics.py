"""Full-ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lsr.recommend.metrics import evaluate, ranking_metrics


def test_ranking_metrics_by_hand() -> None:
    top = torch.tensor([[3, 0, 1, 2], [2, 1, 0, 3]])
    relevant = torch.tensor([[False, True, False, True], [True, False, False, False]])
    got = {k: float(v) for k, v in ranking_metrics(top, relevant, ks=(1, 2, 3)).items()}
    # user 0: relevant {1, 3}, hits at ranks 1 and 3; user 1: relevant {0}, hit at rank 3
    assert got["recall@1"] == pytest.approx(0.5 + 0)
    assert got["recall@2"] == pytest.approx(0.5 + 0)
    assert got["recall@3"] == pytest.approx(1.0 + 1.0)
    ideal2 = 1 + 1 / math.log2(3)  # min(|test|=2, k) hits at the top
    assert got["ndcg@1"] == pytest.approx(1.0 + 0)
    assert got["ndcg@2"] == pytest.approx(1 / ideal2 + 0)
    assert got["ndcg@3"] == pytest.approx((1 + 1 / math.log2(4)) / ideal2 + (1 / math.log2(4)) / 1)


def test_evaluate_excludes_training_items_and_skips_users_without_test() -> None:
    scores = torch.tensor([[9.0, 8.0, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]], dtype=np.float32))
    metrics = evaluate(lambda users: scores[users].clone(), train, test, ks=(1, 2))
    assert metrics["users"] == 2
    # user 0: item 0 is a training item, so item 1 ranks first: recall@1 = 1; user 2: top-2 = [0, 1]: no hits
    assert metrics["recall@1"] == pytest.approx(0.5)
    assert metrics["ndcg@2"] == pytest.approx(0.5)
