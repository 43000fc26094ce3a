"""ONNX Runtime backend for SPLADE document encoding on the CPU, optionally int8-quantised.

The exported graph takes token ids and the attention mask and returns pooled SPLADE
weights ``[batch, vocab]``: backbone, vocabulary projection, max (or sum) pooling and
``log(1 + relu)`` are all inside it, so the ``batch x length x vocab`` logits never
leave ONNX Runtime. Two rewrites keep that tensor cheap inside the graph too:

* max pooling: padding positions take the first token's hidden state before the
  projection (a repeated row cannot change a maximum), so no mask is applied to the
  logits; the bias is added after the max (a per-column constant commutes with it);
* the projection runs a vocabulary slice at a time, each slice reduced at once.

The export recipe (:data:`RECIPE`) then makes the graph fast on the CPU: the backbone is traced with eager
attention (the pattern ONNX Runtime's transformer optimizer recognises; SDPA's traced graph is left unfused), the
optimizer fuses attention, embedding/skip LayerNorm and bias-GELU, and the int8 graph is dynamic quantisation of
the fused one (so attention becomes ``QAttention``). :class:`OnnxRunner` re-cuts each padded batch into groups of
similar length and at most :data:`GROUP_TOKENS` padded tokens: padding is not computed, and the
``tokens x slice`` projection block stays cache-sized (measured: 2x the throughput of whole batches for 512-token
documents, see eval/RESULTS.md, "ONNX encoding").

Exports are cached under ``<lsr cache>/onnx/<digest>/`` (``$LSR_CACHE``, else
lsr in the platform's cache folder), where the digest covers the weights, the pooling settings and
this module's export recipe: a retrained or edited model exports afresh, and the
model folder (possibly read-only, or the shipped package) is never written to.
Each export is written by :func:`lsr.fsutil.atomic_dir`, so a crash leaves none.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from lsr.cache.keys import cache_root
from lsr.errors import LsrError
from lsr.fsutil import atomic_dir

if TYPE_CHECKING:
    from lsr.models.base import SparseEncoder
    from lsr.models.splade import SpladeEncoder, SpladeModule

BACKENDS = ("torch", "onnx", "onnx-int8")
#: How the graph is made; part of the cache digest, so a changed recipe never reuses an older export.
#: Version 1 (sessions before 13): SDPA attention traced as is, no fusion, the plain graph quantised.
RECIPE: dict[str, str | int] = {
    "version": 2,
    "attention": "eager",
    "optimizer": "bert",
    "int8": "dynamic-qint8-per-channel",
}
GRAPH_CHUNK = 4096
"""Vocabulary slice per projection step in the graph: a ``batch x length x slice`` block at a time."""
GROUP_TOKENS = 512
"""Most padded tokens per graph call: one 512-token document, or several shorter ones."""
GROUP_SLACK = 0.9
"""A group's texts are at least this share of its longest: at most 10 % of its positions are padding."""


class _PooledGraph(nn.Module):
    """What is exported: ids and attention mask in, pooled SPLADE weights out (see the module docstring)."""

    def __init__(self, module: SpladeModule, chunk: int = GRAPH_CHUNK) -> None:
        super().__init__()
        self.module = module
        self.chunk = chunk

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.module.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
        keep = attention_mask.unsqueeze(-1) > 0
        weight, bias = self.module.projection.weight, self.module.projection.bias
        slices = range(0, weight.shape[0], self.chunk)
        if self.module.pooling == "max":
            hidden = torch.where(keep, hidden, hidden[:, :1])
            pooled = torch.cat([(hidden @ weight[s : s + self.chunk].T).amax(dim=1) for s in slices], dim=1)
            pooled = torch.log1p(torch.relu(pooled if bias is None else pooled + bias))
        else:
            parts = []
            for s in slices:
                logits = hidden @ weight[s : s + self.chunk].T
                logits = logits if bias is None else logits + bias[s : s + self.chunk]
                parts.append((torch.log1p(torch.relu(logits)) * keep).sum(dim=1))
            pooled = torch.cat(parts, dim=1)
        return torch.log1p(pooled) if self.module.activation == "log1p_relu" else pooled


def graph_digest(module: SpladeModule) -> str:
    """A key of everything the exported graph depends on: weights, pooling, activation, export recipe."""
    digest = hashlib.blake2b(digest_size=12)
    settings = {"pooling": module.pooling, "activation": module.activation, "recipe": RECIPE}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _trace(module: SpladeModule, path: Path) -> None:
    """The pooled graph traced to ``path`` with eager attention (restored afterwards), float32, opset 17."""
    graph = _PooledGraph(module).float().cpu().eval()
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])  # padding in the example: no all-ones shortcut is traced
    backbone = module.backbone
    attention = backbone.config._attn_implementation
    backbone.set_attn_implementation(str(RECIPE["attention"]))
    # the TorchScript exporter (still the one that traces transformers' models without rewrites) warns at length
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (ids, mask),
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["weights"],
                dynamic_axes={"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}},
                opset_version=17,
                dynamo=False,
            )
    finally:
        backbone.set_attn_implementation(attention)


def export(module: SpladeModule, folder: Path) -> None:
    """Write ``model.onnx`` (float32, fused by ONNX Runtime's transformer optimizer) and ``model-int8.onnx``
    (the fused graph, dynamic int8: weights per output channel, activations per call) into ``folder``.

    Heads and width come from the backbone's config (0 lets the optimizer read them off the graph); fusions whose
    pattern is not found are skipped, so other architectures export unfused but correct.
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as exc:
        raise LsrError(f"the ONNX backend needs onnxruntime and onnx (pip install onnxruntime onnx): {exc}") from exc
    traced, fp32 = folder / "traced.onnx", folder / "model.onnx"
    _trace(module, traced)
    config = module.backbone.config
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    width = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimize_model(str(traced), model_type=str(RECIPE["optimizer"]), num_heads=heads, hidden_size=width)
        fused.save_model_to_file(str(fp32))
    traced.unlink()
    # the fused contrib ops have no ONNX shape inference: their outputs are float32, as the quantiser must be told
    quantize_dynamic(
        fp32,
        folder / "model-int8.onnx",
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def exported(module: SpladeModule, cache: Path | None = None) -> Path:
    """The folder holding this module's ONNX exports, exported first if the cache lacks them."""
    folder = (cache or cache_root()) / "onnx" / graph_digest(module)
    if not (folder / "model-int8.onnx").is_file():
        # the module is moved to float32 on the CPU for the export; put it back where it was afterwards
        where = next(module.parameters())
        try:
            with atomic_dir(folder, force=True) as tmp:
                export(module, tmp)
        finally:
            module.to(where.device, where.dtype)
    return folder


class OnnxRunner:
    """Called like :class:`lsr.models.splade.SpladeModule` on a collated batch; runs the exported graph instead."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        # threads that sleep when idle: on a shared machine, spinning ones steal the cores other work needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        lengths = attention_mask.sum(dim=1).tolist()
        parts = []
        for start, end, width in length_groups(lengths):
            feed = {
                "input_ids": input_ids[start:end, :width].cpu().numpy(),
                "attention_mask": attention_mask[start:end, :width].cpu().numpy(),
            }
            (weights,) = self.session.run(["weights"], feed)
            parts.append(torch.from_numpy(np.ascontiguousarray(weights)))
        return torch.cat(parts)


def length_groups(
    lengths: list[int], tokens: int = GROUP_TOKENS, slack: float = GROUP_SLACK
) -> list[tuple[int, int, int]]:
    """Consecutive rows ``(start, end, width)`` run as one graph call (the encoder sorts texts by length).

    A group grows while the next text is no longer than its first, at least ``slack`` of it, and the padded block
    stays within ``tokens``; ``width`` is the group's longest text, so trailing padding is cut off.
    """
    groups, start = [], 0
    while start < len(lengths):
        top, end = max(lengths[start], 1), start + 1
        while end < len(lengths) and slack * top <= lengths[end] <= top and (end - start + 1) * top <= tokens:
            end += 1
        groups.append((start, end, top))
        start = end
    return groups


def use_backend(encoder: SparseEncoder, backend: str, cache: Path | None = None) -> SparseEncoder:
    """``encoder`` with its documents encoded by ``backend`` (``torch``, ``onnx`` or ``onnx-int8``, on the CPU).

    Queries of an inference-free encoder need no model; a SPLADE encoder's queries go through the same graph.
    """
    from lsr.models.inference_free import InferenceFreeEncoder
    from lsr.models.splade import SpladeEncoder

    if backend not in BACKENDS:
        raise LsrError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return encoder
    splade: SpladeEncoder = encoder.document_encoder if isinstance(encoder, InferenceFreeEncoder) else encoder
    if type(splade) is not SpladeEncoder:
        raise LsrError(f"the ONNX backend exports SPLADE and inference-free encoders, not {encoder.kind}")
    if splade.device.type != "cpu":
        raise LsrError("the ONNX backend runs on the CPU; load the encoder with device='cpu'")
    name = "model-int8.onnx" if backend == "onnx-int8" else "model.onnx"
    splade.runner = OnnxRunner(exported(splade.module, cache) / name)
    return encoder


__all__ = ["BACKENDS", "RECIPE", "OnnxRunner", "export", "exported", "graph_digest", "length_groups", "use_backend"]
