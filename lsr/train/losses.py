"""Losses for training learned sparse encoders, as pure functions of batched tensors.

Sparsity regularisers act on pooled term weights ``[n, vocab]`` (SPLADE's output);
ranking and distillation losses act on relevance scores ``[n_queries, n_candidates]``.
Nothing here knows about models, so the same functions serve SPLADE, Mistral-SPLADE
and inference-free training loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


# -- sparsity regularisers ------------------------------------------------------------------------------------------
def flops(weights: torch.Tensor) -> torch.Tensor:
    """SPLADE's FLOPS regulariser ``sum_j (mean_i |w_ij|)^2`` over a ``[n, vocab]`` batch.

    It estimates the expected number of multiplications of an inverted-index dot
    product (Paria et al., 2020): squaring the per-term mean penalises terms that
    are active in many documents (long posting lists) far more than rare ones,
    which L1 does not, so it buys speed rather than just fewer non-zeros.
    """
    return weights.abs().mean(dim=0).pow(2).sum()


def l1(weights: torch.Tensor) -> torch.Tensor:
    """Mean over rows of each row's L1 norm: a per-vector size penalty (used for SPLADE queries by some recipes)."""
    return weights.abs().sum(dim=1).mean()


def idf_aware_flops(doc_weights: torch.Tensor, idf: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """FLOPS with term ``j`` weighted by ``(mean_idf / idf_j) ** power``, for inference-free document encoders.

    In inference-free retrieval a query is its tokens weighted by IDF, so document
    term ``j`` adds ``idf_j * d_j`` to a score and the ranking gradient on ``d_j``
    scales with ``idf_j``. Plain FLOPS pulls every term down alike, so uninformative
    low-IDF expansions survive as easily as useful high-IDF ones; weighting the
    penalty by ``1 / idf_j`` balances it against that gradient, suppressing low-IDF
    terms while keeping high-IDF ones (Geng et al., "Towards Competitive Search
    Relevance For Inference-Free Learned Sparse Retrievers", 2024, IDF-aware FLOPS).
    ``mean_idf`` (over positive entries) keeps the penalty on plain FLOPS's scale.

    ``idf`` ``[vocab]`` is detached: the regulariser must not move a learnable IDF
    table. Terms with ``idf <= 0`` (special tokens) are left out. ``power=0`` is
    plain FLOPS over the remaining terms; ``power=2`` equals dividing the weights by
    ``idf`` inside the square.
    """
    idf = idf.detach().to(doc_weights.dtype)
    valid = idf > 0
    if not bool(valid.any()):
        return doc_weights.new_zeros(())
    mean_idf = idf[valid].mean()
    scale = torch.where(valid, (mean_idf / torch.where(valid, idf, mean_idf)).pow(power), torch.zeros_like(idf))
    return (scale * doc_weights.abs().mean(dim=0).pow(2)).sum()


@dataclass
class RegularizerSchedule:
    """SPLADE's quadratic warm-up of the regulariser weight: ``lambda_max * min(1, step / warmup_steps) ** 2``.

    Starting with a near-zero penalty lets the encoder first learn useful terms;
    applying full strength from step 0 collapses the representations to nothing.
    ``warmup_steps=0`` gives ``lambda_max`` at once.
    """

    lambda_max: float
    warmup_steps: int = 0

    def __call__(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return self.lambda_max
        return self.lambda_max * min(1.0, max(step, 0) / self.warmup_steps) ** 2


# -- ranking losses ----------------------------------------------------------------------------------------------------
def infonce(scores: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
    """Contrastive cross-entropy over each query's row of ``scores`` ``[n_queries, n_docs]``, mean over queries.

    By default query ``i``'s positive is column ``i`` (in-batch negatives: every other
    document of the batch is a negative, and extra hard-negative columns may follow).
    ``labels`` (LongTensor ``[n_queries]``) names the positive column instead, e.g.
    zeros for the ``[q, 1 + n_neg]`` layout with the positive first.
    """
    if labels is None:
        if scores.shape[1] < scores.shape[0]:
            raise ValueError(f"in-batch layout needs n_docs >= n_queries, got scores of shape {tuple(scores.shape)}")
        labels = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores.float() / temperature, labels)


def margin_mse(
    pos_scores: torch.Tensor, neg_scores: torch.Tensor, teacher_pos: torch.Tensor, teacher_neg: torch.Tensor
) -> torch.Tensor:
    """MSE between the student's and the teacher's margins ``pos - neg`` (Hofstätter et al., 2020).

    Only the margin is matched, not the scores, so a cross-encoder teacher's score
    scale and offset need not be reachable by a dot-product student.
    """
    student = pos_scores.float() - neg_scores.float()
    teacher = (teacher_pos.float() - teacher_neg.float()).detach()
    return F.mse_loss(student, teacher)


def kl_distillation(
    student_scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``KL(teacher softmax || student softmax)`` over each query's candidates ``[q, c]``, mean over queries.

    Matches the teacher's whole ranking distribution rather than one margin.
    ``mask`` (bool ``[q, c]``) marks valid candidates, so ragged candidate lists can be
    padded: masked entries take no probability on either side. Queries without any
    valid candidate are left out of the mean. Both score sets are divided by
    ``temperature``; no ``temperature ** 2`` factor is applied (scale the loss when
    mixing it with hard-label losses at high temperature).
    """
    student = student_scores.float() / temperature
    teacher = teacher_scores.detach().float() / temperature
    if mask is None:
        mask = torch.ones_like(student, dtype=torch.bool)
    neg_inf = torch.finfo(student.dtype).min
    log_q = torch.log_softmax(student.masked_fill(~mask, neg_inf), dim=1)
    log_p = torch.log_softmax(teacher.masked_fill(~mask, neg_inf), dim=1)
    per_entry = torch.where(mask, log_p.exp() * (log_p - log_q), torch.zeros_like(log_q))
    rows = mask.any(dim=1)
    if not bool(rows.any()):
        return per_entry.sum() * 0.0
    return per_entry.sum(dim=1)[rows].mean()


# -- teacher ensembles -------------------------------------------------------------------------------------------------
def normalize_minmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-query min-max normalisation of ``scores`` ``[q, c]`` to ``[0, 1]`` over the valid entries.

    A row whose valid scores are all equal (one candidate, or a teacher with no
    opinion) becomes 0.5 everywhere: a constant per row changes no ranking,
    softmax or margin, and the midpoint does not pretend the candidates are all
    irrelevant or all relevant. Masked entries come out as 0.
    """
    scores = scores.float()
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    low = scores.masked_fill(~mask, float("inf")).amin(dim=1, keepdim=True)
    high = scores.masked_fill(~mask, float("-inf")).amax(dim=1, keepdim=True)
    span = high - low
    flat = ~(span > 0)  # also true for rows without valid entries (inf - inf is nan)
    out = (scores - torch.where(flat, torch.zeros_like(low), low)) / torch.where(flat, torch.ones_like(span), span)
    out = torch.where(flat, torch.full_like(out, 0.5), out)
    return out.masked_fill(~mask, 0.0)


def combine_teachers(
    score_list: Sequence[torch.Tensor], weights: Sequence[float] | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Heterogeneous ensemble distillation target: per-query min-max normalised teacher scores, weighted and summed.

    Teachers (cross-encoders, dense and sparse retrievers, LLM rerankers) score on
    unrelated scales; normalising each teacher's ``[q, c]`` scores per query first
    means none dominates the ensemble merely by the size of its numbers. Default
    weights are equal and sum to 1; given weights are used as they are.
    """
    if not score_list:
        raise ValueError("combine_teachers needs at least one teacher")
    if weights is None:
        weights = [1.0 / len(score_list)] * len(score_list)
    if len(weights) != len(score_list):
        raise ValueError(f"{len(score_list)} teachers but {len(weights)} weights")
    combined = torch.zeros_like(score_list[0], dtype=torch.float32)
    for scores, weight in zip(score_list, weights, strict=True):
        combined = combined + weight * normalize_minmax(scores.detach(), mask)
    return combined
