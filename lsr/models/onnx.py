"""ONNX Runtime backend for SPLADE document encoding on the CPU, optionally int8-quantised.

The exported graph takes token ids and the attention mask and returns pooled SPLADE
weights ``[batch, vocab]``: backbone, vocabulary projection, max (or sum) pooling and
``log(1 + relu)`` are all inside it, so the ``batch x length x vocab`` logits never
leave ONNX Runtime. Two rewrites keep that tensor cheap inside the graph too:

* max pooling: padding positions take the first token's hidden state before the
  projection (a repeated row cannot change a maximum), so no mask is applied to the
  logits; the bias is added after the max (a per-column constant commutes with it);
* the projection runs a vocabulary slice at a time, each slice reduced at once.

Exports are cached under ``<lsr cache>/onnx/<digest>/`` (``$LSR_CACHE``, else
lsr in the platform's cache folder), where the digest covers the weights, the pooling settings and
this module's graph version: a retrained or edited model exports afresh, and the
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
#: Bumped whenever the exported graph changes, so older cached exports are not reused.
GRAPH_VERSION = 1
GRAPH_CHUNK = 4096
"""Vocabulary slice per projection step in the graph: a ``batch x length x slice`` block at a time."""


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
    """A key of everything the exported graph depends on: weights, pooling, activation, graph version."""
    digest = hashlib.blake2b(digest_size=12)
    settings = {"pooling": module.pooling, "activation": module.activation, "version": GRAPH_VERSION}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export(module: SpladeModule, folder: Path) -> None:
    """Write ``model.onnx`` (float32) and ``model-int8.onnx`` (dynamic int8: weights per output channel, activations
    per batch) into ``folder``; ONNX Runtime's quantiser needs the ``onnx`` package."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise LsrError(f"the ONNX backend needs onnxruntime and onnx (pip install onnxruntime onnx): {exc}") from exc
    graph = _PooledGraph(module).float().cpu().eval()
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])  # padding in the example: no all-ones shortcut is traced
    fp32 = folder / "model.onnx"
    # the TorchScript exporter (still the one that traces transformers' models without rewrites) warns at length
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (ids, mask),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["weights"],
            dynamic_axes={"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}},
            opset_version=17,
            dynamo=False,
        )
    quantize_dynamic(fp32, folder / "model-int8.onnx", per_channel=True, weight_type=QuantType.QInt8)


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
        feed = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        (weights,) = self.session.run(["weights"], feed)
        return torch.from_numpy(np.ascontiguousarray(weights))


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


__all__ = ["BACKENDS", "OnnxRunner", "export", "exported", "graph_digest", "use_backend"]
