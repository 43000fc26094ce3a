"""Training losses against values worked out by hand on tiny tensors, and the behaviour each one is for."""

from __future__ import annotations

import math

import pytest
import torch

from lsr.train.losses import (
    RegularizerSchedule,
    combine_teachers,
    flops,
    idf_aware_flops,
    infonce,
    kl_distillation,
    l1,
    margin_mse,
    normalize_minmax,
)

W = torch.tensor([[1.0, -2.0, 0.0], [3.0, 0.0, 1.0]])


def close(value: torch.Tensor, expected: float) -> None:
    assert float(value.detach()) == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_flops_and_l1() -> None:
    close(flops(W), 5.25)  # column means of |w|: 2, 1, 0.5 -> 4 + 1 + 0.25
    close(l1(W), 3.5)  # row norms 3 and 4


def test_idf_aware_flops_values() -> None:
    idf = torch.tensor([1.0, 3.0, 0.0], requires_grad=True)  # the third term is a special token
    # mean positive IDF 2: scales 2/1 = 2 and 2/3; the special term is left out
    close(idf_aware_flops(W, idf), 2 * 4 + (2 / 3) * 1)
    close(idf_aware_flops(W, idf, power=2.0), 4 * 4 + (4 / 9) * 1)
    close(idf_aware_flops(W, idf, power=0.0), 4 + 1)
    close(idf_aware_flops(W, torch.tensor([2.0, 5.0, 7.0]), power=0.0), 5.25)  # plain FLOPS
    weights = W.clone().requires_grad_(True)
    idf_aware_flops(weights, idf).backward()
    assert idf.grad is None  # the IDF table is not pushed by the regulariser
    assert weights.grad is not None and float(weights.grad[:, 2].abs().sum()) == 0.0


def test_idf_aware_flops_suppresses_low_idf_terms_faster() -> None:
    idf = torch.tensor([1.0, 4.0])  # term 0 uninformative, term 1 informative
    weights = torch.tensor([[1.0, 1.0]], requires_grad=True)  # equal mean activation
    idf_aware_flops(weights, idf).backward()
    grad_low, grad_high = weights.grad[0].tolist()
    assert grad_low == pytest.approx(5.0) and grad_high == pytest.approx(1.25)  # 2 * (2.5 / idf_j) * 1
    optimizer = torch.optim.SGD([weights], lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        idf_aware_flops(weights, idf).backward()
        optimizer.step()
    low, high = weights.detach()[0].tolist()
    assert low == pytest.approx(0.75**5, rel=1e-5) and high == pytest.approx(0.9375**5, rel=1e-5)
    assert low / high < 0.35  # plain FLOPS keeps the ratio at 1
    plain = torch.tensor([[1.0, 1.0]], requires_grad=True)
    optimizer = torch.optim.SGD([plain], lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        idf_aware_flops(plain, idf, power=0.0).backward()
        optimizer.step()
    assert plain[0, 0].item() == pytest.approx(plain[0, 1].item())


def test_quadratic_warmup() -> None:
    schedule = RegularizerSchedule(lambda_max=0.1, warmup_steps=10)
    assert [schedule(s) for s in (0, 5, 10, 20)] == pytest.approx([0.0, 0.025, 0.1, 0.1])
    assert RegularizerSchedule(lambda_max=0.1)(0) == 0.1


def test_infonce() -> None:
    scores = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    close(infonce(scores), 0.41003759580145893)  # (log(1 + e^-2) + log 2) / 2
    close(infonce(scores, temperature=0.5), 0.35564855423887753)  # (log(1 + e^-4) + log 2) / 2
    close(infonce(torch.tensor([[3.0, 1.0, 1.0]]), torch.tensor([0])), 0.23954476622188453)  # log(1 + 2e^-2)
    with_hard = torch.tensor([[2.0, 0.0, -50.0], [1.0, 1.0, -50.0]])  # an extra hard-negative column
    close(infonce(with_hard), 0.41003759580145893)
    with pytest.raises(ValueError, match="n_docs >= n_queries"):
        infonce(torch.zeros(3, 2))


def test_margin_mse() -> None:
    pos, neg = torch.tensor([3.0, 1.0]), torch.tensor([1.0, 2.0])  # student margins 2, -1
    close(margin_mse(pos, neg, torch.tensor([5.0, 2.0]), torch.tensor([2.0, 0.0])), 5.0)  # teacher 3, 2: (1 + 9) / 2


def test_kl_distillation() -> None:
    student = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    teacher = torch.tensor([[0.0, math.log(3.0)], [1.0, 2.0]])  # p = (1/4, 3/4) vs q = (1/2, 1/2); row 2 equal
    close(kl_distillation(student, teacher), 0.13081203594113697 / 2)
    close(kl_distillation(student * 2, teacher * 2, temperature=2.0), 0.13081203594113697 / 2)  # scores / T


def test_masked_kl_equals_kl_over_unpadded_candidates() -> None:
    # query 1: 2 candidates, query 2: 3 candidates, padded to 3 with junk
    student = torch.tensor([[0.0, 0.0, 9.0], [0.0, 0.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, math.log(3.0), -7.0], [math.log(2.0), 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    loss = kl_distillation(student, teacher, mask=mask)
    # by hand: 0.25 ln 0.5 + 0.75 ln 1.5, and 0.5 ln 1.5 + 0.5 ln 0.75
    close(loss, (0.13081203594113697 + 0.05889151782819174) / 2)
    ragged = (kl_distillation(student[:1, :2], teacher[:1, :2]) + kl_distillation(student[1:], teacher[1:])) / 2
    close(loss, float(ragged.detach()))
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all() and student.grad[0, 2] == 0


def test_minmax_normalisation() -> None:
    out = normalize_minmax(torch.tensor([[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]]))
    assert out.tolist() == [[0.0, 1.0, 0.5], [0.5, 0.5, 0.5]]  # a flat row is 0.5
    masked = normalize_minmax(torch.tensor([[1.0, 100.0, 3.0]]), torch.tensor([[True, False, True]]))
    assert masked.tolist() == [[0.0, 0.0, 1.0]]


def test_combined_teachers_do_not_weigh_by_scale() -> None:
    small = torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 10.0]])
    assert combine_teachers([small, small * 1000]).tolist() == [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]
    opposite = torch.tensor([[3.0, 2.0, 1.0], [10.0, 5.0, 0.0]]) * 1000  # disagrees, on a 1000x scale
    assert combine_teachers([small, opposite]).tolist() == [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
    weighted = combine_teachers([small, opposite], weights=[0.75, 0.25])
    assert weighted.tolist() == [[0.25, 0.5, 0.75], [0.25, 0.5, 0.75]]
    with pytest.raises(ValueError, match="2 teachers but 1 weights"):
        combine_teachers([small, opposite], weights=[1.0])
