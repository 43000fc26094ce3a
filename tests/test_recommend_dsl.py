"""Dynamic Sparse Learning: exact budget, pruned weights stay zero, cosine schedule, the ablations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsr.recommend.dsl import SparseMasks, cosine_fraction


def _setup(regrow: str = "gradient", static: bool = False, density: float = 0.3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    masks = SparseMasks(model, optimizer, density, total_steps=60, update_every=5, regrow=regrow, static=static)
    return model, optimizer, masks


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, masks: SparseMasks) -> None:
    ids = torch.randint(0, 50, (32,))
    loss = model[1:](model[0](ids)).pow(2).mean() - model[0](ids).sum() * 0.01
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    masks.step()


@pytest.mark.parametrize("regrow", ["gradient", "momentum", "accumulated", "random"])
def test_budget_is_exact_after_every_prune_and_regrow(regrow: str) -> None:
    model, optimizer, masks = _setup(regrow)
    budget = masks.active()
    assert budget == {"0.weight": 120, "1.weight": 38, "3.weight": 19}  # round(0.3 × size); biases stay dense
    history = [masks.masks["0.weight"].clone()]
    for _ in range(55):
        _train_step(model, optimizer, masks)
        assert masks.active() == budget
        history.append(masks.masks["0.weight"].clone())
    assert any((a != b).any() for a, b in zip(history, history[1:], strict=False)), "the mask never moved"
    for name, param in masks.params.items():
        assert int((param != 0).sum()) <= budget[name]


def test_pruned_weights_and_their_optimizer_state_stay_zero() -> None:
    model, optimizer, masks = _setup()
    for step in range(1, 24):
        _train_step(model, optimizer, masks)
        for name, param in masks.params.items():
            off = ~masks.masks[name]
            # the gradient is masked before the optimiser steps, but left dense where regrowth scores by it
            assert (param.grad[off].abs().sum() > 0) == (step % 5 == 0)
            assert (param[off] == 0).all()
            state = optimizer.state[param]
            assert (state["exp_avg"][off] == 0).all() and (state["exp_avg_sq"][off] == 0).all()


def test_static_mask_never_changes() -> None:
    model, optimizer, masks = _setup(static=True)
    before = {n: m.clone() for n, m in masks.masks.items()}
    for _ in range(20):
        _train_step(model, optimizer, masks)
    assert all(torch.equal(before[n], masks.masks[n]) for n in before)


def test_prune_fraction_decays_on_a_cosine() -> None:
    assert cosine_fraction(0.5, 0, 100) == pytest.approx(0.5)
    assert cosine_fraction(0.5, 50, 100) == pytest.approx(0.25)
    assert cosine_fraction(0.5, 100, 100) == pytest.approx(0.0)
    values = [cosine_fraction(0.5, t, 100) for t in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_gradient_regrowth_picks_the_largest_gradients() -> None:
    model = nn.Module()
    model.weight = nn.Parameter(torch.zeros(1, 6))
    optimizer = torch.optim.SGD([model.weight], lr=0.0)
    masks = SparseMasks(model, optimizer, density=0.5, total_steps=100, update_every=1, fraction=0.4)
    masks.masks["weight"].copy_(torch.tensor([[True, True, True, False, False, False]]))
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[5.0, 0.1, 3.0, 0.0, 0.0, 0.0]]))
    model.weight.grad = torch.tensor([[0.0, 0.0, 0.0, 0.2, 9.0, 0.1]])
    masks.step()  # fraction ≈ 0.4 of three active weights → one: the smallest (0.1) goes, |grad| 9.0 grows
    assert masks.masks["weight"].tolist() == [[True, False, True, False, True, False]]
    assert model.weight.tolist() == [[5.0, 0.0, 3.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize(("regrow", "grown"), [("gradient", 5), ("accumulated", 3)])
def test_accumulated_regrowth_scores_by_the_gradient_summed_over_the_interval(regrow: str, grown: int) -> None:
    """Position 3 is pulled the same way at every step, position 4 back and forth, position 5 hard once at the
    update: the sum over the interval picks 3, where the last batch's gradient alone would pick 5."""
    model = nn.Module()
    model.weight = nn.Parameter(torch.zeros(1, 6))
    optimizer = torch.optim.SGD([model.weight], lr=0.0)
    masks = SparseMasks(model, optimizer, 0.5, total_steps=100, update_every=3, fraction=0.4, regrow=regrow)
    masks.masks["weight"].copy_(torch.tensor([[True, True, True, False, False, False]]))
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[5.0, 0.1, 3.0, 0.0, 0.0, 0.0]]))
    for grad in ([0, 0, 0, 1.0, 2.0, 0], [0, 0, 0, 1.0, -2.0, 0], [0, 0, 0, 0, 0, 1.5]):
        model.weight.grad = torch.tensor([grad])
        optimizer.step()
        masks.step()
    assert masks.masks["weight"][0].nonzero().squeeze(1).tolist() == [0, 2, grown]
    if regrow == "accumulated":  # the next interval sums from zero
        assert not masks.grad_momentum["weight"].any()


def test_regrowth_beyond_the_gradient_is_random_not_a_block_of_rows() -> None:
    """An embedding's batch gradient reaches only the batch's rows; regrowing more positions than those must
    spread the rest at random over the table, not on the block of adjacent rows where topk puts its ties."""
    model = nn.Module()
    model.weight = nn.Parameter(torch.ones(400, 8))
    optimizer = torch.optim.SGD([model.weight], lr=0.0)
    masks = SparseMasks(model, optimizer, density=0.5, total_steps=10**6, update_every=1, fraction=0.5)
    inactive = ~masks.masks["weight"]
    grad = torch.zeros(400, 8)
    grad[0] = inactive[0].float()  # the only "batch row": its inactive positions have a gradient
    model.weight.grad = grad
    before = masks.masks["weight"].clone()
    masks.step()  # drops 800 of the 1,600 active weights, regrows 800
    grown = masks.masks["weight"] & ~before
    assert grown[0].sum() == inactive[0].sum()  # the gradient's positions first
    rows = grown[1:].any(1).nonzero().squeeze(1)
    assert len(rows) > 300  # 800 - 8 regrown positions over most of the 399 other rows, not ~100 adjacent ones
    assert (rows < 200).sum() > 100 and (rows >= 200).sum() > 100


def test_pooled_budget_moves_between_tensors_and_keeps_the_total() -> None:
    """Pooled, the update compares magnitudes across tensors: a tensor of small weights gives its budget to one
    of large gradients, the total stays exact, and weights and Adam's moments stay zero off the masks."""
    model = nn.Module()
    model.small = nn.Parameter(torch.zeros(10, 4))
    model.large = nn.Parameter(torch.zeros(10, 4))
    optimizer = torch.optim.Adam([model.small, model.large], lr=0.01)
    masks = SparseMasks(model, optimizer, 0.5, total_steps=100, update_every=1, fraction=0.5, pooled=True)
    with torch.no_grad():
        model.small.copy_(masks.masks["small"] * 0.01)
        model.large.copy_(masks.masks["large"] * 5.0)
    model.small.grad = torch.zeros(10, 4)
    model.large.grad = torch.ones(10, 4)
    optimizer.step()
    masks.step()  # one step into the cosine the fraction is just under 0.5: 19 of the 40 active weights move
    assert masks.active() == {"small": 1, "large": 39}  # all 19 from the small tensor's, regrown in the large
    for name, param in masks.params.items():
        off = ~masks.masks[name]
        assert (param[off] == 0).all() and (optimizer.state[param]["exp_avg"][off] == 0).all()
