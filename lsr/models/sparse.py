"""Sparse vectors as SciPy CSR matrices, and the SPLADE activation computed without the full logits tensor.

A SPLADE vector is ``max_t log(1 + relu(h_t W^T + b))`` over the tokens ``t`` of a
text. Because ``log1p`` and ``relu`` are monotone, the max can be taken over the
raw logits first, and the logits can be produced a slice of the vocabulary at a
time, so memory is ``batch x length x chunk`` instead of ``batch x length x vocab``.

Training with max pooling goes further (:class:`_MaxPool`): only the token that won
each (text, term) max receives that term's gradient, and only terms with a positive
max have one (``relu``), so backward touches a few hundred (token, term) pairs per
text instead of the whole ``batch x length x vocab`` logits that autograd would
otherwise keep and differentiate.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

# index_reduce is stable in practice but still labelled beta; the label is noise for users.
warnings.filterwarnings("ignore", message="index_reduce\\(\\) is in beta")


def splade_pool(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    pooling: str = "max",
    chunk: int = 8192,
    packed: bool | None = None,
) -> torch.Tensor:
    """Pooled SPLADE weights ``[batch, vocab]`` from last hidden states ``[batch, length, dim]``.

    ``weight``/``bias`` are the vocabulary projection; ``mask`` ``[batch, length]`` marks
    the positions to pool (non-padding tokens, or the echo copy of a decoder input).
    Each vocabulary slice's logits are reduced per text as soon as they are computed.
    On the CPU only the pooled positions are projected (padding costs nothing there);
    on a GPU the padded layout is kept, because a dense reduction over the length axis
    is many times faster there than scattering packed rows (measured on an H100).
    ``packed`` forces one layout (``None``: by device).
    """
    if pooling not in ("max", "sum"):
        raise ValueError(f"pooling must be 'max' or 'sum', got {pooling!r}")
    if pooling == "max" and torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return torch.log1p(torch.relu(_MaxPool.apply(hidden, weight, bias, mask, chunk)))
    batch, length, dim = hidden.shape
    packed = hidden.device.type == "cpu" if packed is None else packed
    if packed:
        positions = mask.reshape(-1).nonzero().squeeze(1)
        rows = hidden.reshape(-1, dim).index_select(0, positions)
        text = positions // length
    else:
        rows = hidden.reshape(-1, dim)
        keep = mask.bool().reshape(-1, 1)
    pieces = []
    for start in range(0, weight.shape[0], chunk):
        part = weight[start : start + chunk].T
        logits = rows @ part if bias is None else torch.addmm(bias[start : start + chunk], rows, part)
        width = logits.shape[1]
        if pooling == "max":
            if packed:
                pooled = logits.new_full((batch, width), float("-inf")).index_reduce(0, text, logits, "amax")
            else:
                pooled = logits.masked_fill(~keep, float("-inf")).view(batch, length, width).amax(dim=1)
            pieces.append(torch.log1p(torch.relu(pooled)))
        else:
            act = torch.log1p(torch.relu(logits))
            if packed:
                pieces.append(act.new_zeros((batch, width)).index_add(0, text, act))
            else:
                pieces.append((act * keep).view(batch, length, width).sum(dim=1))
    return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]


class _MaxPool(torch.autograd.Function):
    """Per text and term, the max over pooled positions of the raw logits ``hidden @ weight.T + bias``, with a
    backward that reads only the winning positions.

    Forward keeps, per (text, term), the position of the max (``[batch, vocab]`` indices) instead of the logits.
    Backward gathers the pairs whose incoming gradient is non-zero (after ``relu`` and the special-token mask that
    is almost every pair's): each sends ``g * weight[term]`` to its winning position's hidden state and
    ``g * hidden[position]`` to its term's weight row. The logits are produced in ``hidden``'s dtype (bf16 under
    autocast), as the plain path does; the weight's gradient comes back in the weight's own dtype.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        mask: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:
        batch, length, dim = hidden.shape
        rows = hidden.reshape(-1, dim)
        padding = ~mask.bool().reshape(-1, 1)
        values, where = [], []
        for start in range(0, weight.shape[0], chunk):
            part = weight[start : start + chunk].to(hidden.dtype).T
            logits = (
                rows @ part if bias is None else torch.addmm(bias[start : start + chunk].to(hidden.dtype), rows, part)
            )
            best, position = logits.masked_fill_(padding, float("-inf")).view(batch, length, -1).max(dim=1)
            values.append(best)
            where.append(position)
        ctx.save_for_backward(hidden, weight, torch.cat(where, dim=1))
        ctx.bias_dtype = None if bias is None else bias.dtype
        return torch.cat(values, dim=1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        hidden, weight, where = ctx.saved_tensors
        text, term = grad.nonzero(as_tuple=True)
        scale = grad[text, term].float().unsqueeze(1)
        position = where[text, term]
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # sums in fp32: one position wins many terms
            total = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device)
            grad_hidden = total.index_put_((text, position), scale * weight[term].float(), accumulate=True)
            grad_hidden = grad_hidden.to(hidden.dtype)
        if ctx.needs_input_grad[1]:
            total = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            grad_weight = total.index_add_(0, term, scale * hidden[text, position].float()).to(weight.dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            total = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
            grad_bias = total.index_add_(0, term, scale.squeeze(1)).to(ctx.bias_dtype)
        return grad_hidden, grad_weight, grad_bias, None, None


def keep_top_k(weights: torch.Tensor, k: int | None) -> torch.Tensor:
    """Zero all but the ``k`` largest weights of each row (no-op when ``k`` is None or not smaller than the width)."""
    if k is None or k >= weights.shape[1]:
        return weights
    values, indices = weights.topk(k, dim=1)
    return torch.zeros_like(weights).scatter_(1, indices, values)


def to_csr(weights: torch.Tensor) -> sp.csr_matrix:
    """Dense ``[batch, vocab]`` weights (any device) to a float32 CSR matrix on the CPU, dropping zeros.

    The non-zeros are found where the weights live (on the GPU, only they cross to the host).
    """
    weights = weights.detach()
    rows, cols = weights.nonzero(as_tuple=True)
    values = weights[rows, cols].float().cpu().numpy()
    indptr = np.zeros(weights.shape[0] + 1, dtype=np.int64)
    np.cumsum(torch.bincount(rows, minlength=weights.shape[0]).cpu().numpy(), out=indptr[1:])
    return sp.csr_matrix((values, cols.cpu().numpy().astype(np.int32), indptr), shape=tuple(weights.shape))


def pool_windows(rows: sp.csr_matrix, owners: np.ndarray, count: int, pooling: str = "max") -> sp.csr_matrix:
    """One vector per text from the vectors of its windows (``owners[i]``: the text of row ``i``): each term's max
    over the windows (as SPLADE pools over tokens, so a term strong anywhere in a long text stays strong), or sum."""
    if pooling not in ("max", "sum"):
        raise ValueError(f"window pooling must be 'max' or 'sum', got {pooling!r}")
    coo = rows.tocoo()
    text = owners[coo.row]
    shape = (count, rows.shape[1])
    if pooling == "max":  # per (text, term) keep the largest weight: sort by key, largest first, take the first
        key = text.astype(np.int64) * rows.shape[1] + coo.col
        order = np.lexsort((-coo.data, key))
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        keep = order[first]
        coo = sp.coo_matrix((coo.data[keep], (text[keep], coo.col[keep])), shape=shape)
    else:
        coo = sp.coo_matrix((coo.data, (text, coo.col)), shape=shape)  # duplicates are summed by tocsr
    result = coo.tocsr().astype(np.float32)
    result.sort_indices()
    return result
