"""Dynamic Sparse Learning (Wang et al., WSDM 2024): train a recommender sparse from the first step.

Every weight tensor (embedding tables included; biases stay dense, they are a rounding error) gets a
random mask holding exactly ``round(density × size)`` ones. Weights outside the mask are zero, and so is
the optimiser's state there, after every step. Every ``update_every`` steps each tensor drops the
``fraction`` of its active weights with the smallest magnitude and activates as many inactive positions,
chosen by the largest dense-gradient magnitude (or a momentum of it, or the gradient summed over the
interval, or at random; positions the gradient does not reach, such as embedding rows outside the batch, in
random order); regrown weights start at zero. The number of ones never changes, so the parameter budget is
the same at every step, and ``fraction`` decays to zero on a cosine schedule so the mask settles as training
converges. With ``pooled`` the update ranks all tensors' weights together instead, so the budget can move
between tensors (the paper's "sparsity distribution"); its total still never changes.

Regrowth by the gradient summed over the interval (``accumulated``) beat the paper's last-batch gradient in
every LightGCN, MF and MultVAE run measured (eval/RESULTS.md; NeuMF at 0.2 tied): Gowalla LightGCN at density
0.2, recall@20 +3.2% after 200 epochs of the DSL authors' schedule and −7.9% from dense after 1000 (last-batch
gradient: −11.6% after 400); on MovieLens-100k at 0.2, LightGCN +5% and MF +18%. It stays an option so the
default is the paper's rule.

Matrix factorisation suffers most (measured on 8,000 Gowalla users, lr 0.001, density 0.2): element masks on
both tables leave a user and an item about ``64 × 0.2²`` ≈ 2.6 shared dimensions, so a static mask learns
little (recall@20 0.014 after 10,000 steps; dense: 0.10 after 8,000), and while ``fraction`` stays near 0.5 each update
replaces half the budget, mostly moving it to heavy users' and popular items' rows: recall peaks early and
then falls as the loss keeps falling (0.034 at step 4,000, 0.029 at 12,000), and rises again once the
schedule decays (0.048 at step 8,000 when it spans 10,700 steps). Models whose scores mix many rows, as
LightGCN's propagation does, keep dense-enough vectors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

REGROW = ("gradient", "momentum", "accumulated", "random")


def cosine_fraction(initial: float, step: int, total_steps: int) -> float:
    """The prune fraction at ``step``: ``initial`` at step 0, decaying on a half cosine to 0 at ``total_steps``."""
    return 0.5 * initial * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


class SparseMasks:
    """Masks of a model's weight tensors, kept at a constant budget while they move (call :meth:`step`)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        density: float,
        total_steps: int,
        update_every: int = 100,
        fraction: float = 0.5,
        regrow: str = "gradient",
        static: bool = False,
        seed: int = 0,
        momentum: float = 0.9,
        pooled: bool = False,
    ) -> None:
        if not 0 < density <= 1:
            raise ValueError(f"density must be in (0, 1], got {density}")
        if regrow not in REGROW:
            raise ValueError(f"regrow must be one of {', '.join(REGROW)}, got {regrow!r}")
        self.optimizer = optimizer
        self.total_steps, self.update_every, self.fraction = total_steps, update_every, fraction
        self.regrow, self.static, self.momentum, self.pooled = regrow, static, momentum, pooled
        self.steps = 0
        generator = torch.Generator().manual_seed(seed)
        self.params: dict[str, nn.Parameter] = {n: p for n, p in model.named_parameters() if p.dim() >= 2}
        self.masks: dict[str, torch.Tensor] = {}
        for name, param in self.params.items():
            keep = max(1, round(density * param.numel()))
            mask = torch.zeros(param.numel(), dtype=torch.bool)
            mask[torch.randperm(param.numel(), generator=generator)[:keep]] = True
            self.masks[name] = mask.view_as(param).to(param.device)
        # The masks in the weights' dtype, for masking gradients: a float tensor times a bool one converts the
        # bool on the fly, ~3× slower on a CPU (2.8 ms against 0.8 ms for Gowalla MF's 4.5M weights a step).
        self._scales: dict[str, torch.Tensor] = {}
        self._refresh_scales()
        # "momentum": an exponential average of the dense gradient; "accumulated": its sum since the last update
        tracked = regrow in ("momentum", "accumulated")
        self.grad_momentum = {n: torch.zeros_like(p) for n, p in self.params.items()} if tracked else {}
        self._generator = torch.Generator(device=next(iter(self.params.values())).device).manual_seed(seed)
        self.apply()
        optimizer.register_step_pre_hook(self._mask_gradients)

    def state_dict(self) -> dict[str, Any]:
        """What moves during training besides the weights and the optimiser: a resumed run continues from it."""
        return {
            "masks": self.masks,
            "steps": self.steps,
            "grad_momentum": self.grad_momentum,
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (tensors may come from another device of the same type)."""
        self.steps = state["steps"]
        for name, mask in state["masks"].items():
            self.masks[name].copy_(mask)
        self._refresh_scales()
        for name, buffer in state["grad_momentum"].items():
            self.grad_momentum[name].copy_(buffer)
        self._generator.set_state(state["generator"])

    def _refresh_scales(self) -> None:
        for name, param in self.params.items():
            self._scales[name] = self.masks[name].to(param.dtype)

    def active(self) -> dict[str, int]:
        """Number of active weights per tensor: the budget, constant through training."""
        return {name: int(mask.sum()) for name, mask in self.masks.items()}

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the weights and every optimiser state tensor (Adam's moments) outside the masks."""
        for name, param in self.params.items():
            mask = self.masks[name]
            param.mul_(mask)
            for value in self.optimizer.state.get(param, {}).values():
                if torch.is_tensor(value) and value.shape == param.shape:
                    value.mul_(mask)

    def _updates_at(self, step: int) -> bool:
        """Whether the mask is pruned and regrown after optimiser step number ``step``."""
        return not self.static and step % self.update_every == 0 and step < self.total_steps

    @torch.no_grad()
    def _mask_gradients(self, *_: Any) -> None:
        """Before each ``optimizer.step()``: zero the gradient outside the masks, so the weights and Adam's
        moments there, zero already, stay zero (one pass over each tensor instead of zeroing three after it).

        Before a step that regrows, the dense gradient is left for :meth:`step` to score regrowth by, and
        :meth:`step` zeroes what that optimiser step wrote outside the masks.
        """
        decay, weight = (1.0, 1.0) if self.regrow == "accumulated" else (self.momentum, 1 - self.momentum)
        for name, buffer in self.grad_momentum.items():
            grad = self.params[name].grad
            if grad is not None:
                buffer.mul_(decay).add_(grad, alpha=weight)
        if self._updates_at(self.steps + 1):
            return
        for name, param in self.params.items():
            if param.grad is not None:
                param.grad.mul_(self._scales[name])

    @torch.no_grad()
    def step(self) -> None:
        """Call after ``optimizer.step()``, while the gradients are still there: maybe prune and regrow.

        Registered as the optimiser's step pre-hook, :meth:`_mask_gradients` has kept everything outside the
        masks at zero, except before an update, whose optimiser step saw the dense gradient.
        """
        self.steps += 1
        if self._updates_at(self.steps):
            self.apply()
            fraction = cosine_fraction(self.fraction, self.steps, self.total_steps)
            groups = [list(self.params)] if self.pooled else [[name] for name in self.params]
            for names in groups:
                self._prune_and_regrow(names, fraction)
            self._refresh_scales()
            if self.regrow == "accumulated":
                for buffer in self.grad_momentum.values():
                    buffer.zero_()

    def _regrow_score(self, name: str) -> torch.Tensor:
        """Regrowth priority of every position: |gradient| (or its momentum, or its sum over the interval), else
        uniform noise.

        The sum over the ΔT steps since the last update is the gradient of the loss over all those batches:
        every row the sampler reached in the interval has a score, not only the last batch's rows (which is
        what favours the last batch's users and items under plain gradient regrowth, the flaw SparseRec, Qu et
        al. 2024, points out), and noise that changes sign from batch to batch cancels.

        An embedding table's gradient reaches only the batch's rows, far fewer positions than a table regrows,
        so most candidates score exactly 0. topk would break those ties by memory order, regrowing one block of
        adjacent rows at every update; a random order among them (negative noise, below every positive score)
        spreads them over the table instead, as random regrowth would.
        """
        param = self.params[name]
        noise = torch.rand(param.shape, device=param.device, generator=self._generator)
        if self.regrow == "random" or param.grad is None:
            return noise
        source = self.grad_momentum[name] if self.grad_momentum else param.grad
        score = source.abs()
        return torch.where(score > 0, score, -noise)

    def _prune_and_regrow(self, names: list[str], fraction: float) -> None:
        """Move ``fraction`` of the active weights of ``names``, taken together: with several tensors
        (``pooled``), the smallest magnitudes and the best regrowth scores are compared across all of them, so
        a tensor's share of the budget moves while the total stays the same."""
        flat_param = torch.cat([self.params[name].detach().view(-1) for name in names])
        flat_mask = torch.cat([self.masks[name].view(-1) for name in names])
        active = flat_mask.nonzero().squeeze(1)
        count = int(fraction * active.numel())
        if count == 0:
            return
        dropped = active[torch.topk(flat_param[active].abs(), count, largest=False).indices]
        flat_mask[dropped] = False
        score = torch.cat([self._regrow_score(name).reshape(-1) for name in names])
        score.masked_fill_(flat_mask, -math.inf)  # candidates: every position inactive now, the just-dropped too
        grown = torch.topk(score, count).indices
        flat_mask[grown] = True
        changed = torch.zeros_like(flat_mask)
        changed[torch.cat([dropped, grown])] = True  # dropped weights leave, regrown ones start from zero
        start = 0
        for name in names:
            param, end = self.params[name], start + self.params[name].numel()
            self.masks[name].view(-1).copy_(flat_mask[start:end])
            moved = changed[start:end].view_as(param)
            param.data[moved] = 0.0
            for value in self.optimizer.state.get(param, {}).values():
                if torch.is_tensor(value) and value.shape == param.shape:
                    value[moved] = 0.0
            start = end
