"""Two ONNX export recipes against torch in one process, rounds interleaved (issue 22 item 4, session 13).

``lsr bench onnx`` times whatever recipe the installed lsr exports; on a shared machine the torch path's speed
moves with the load (its OpenMP threads wait on descheduled peers), so ratios from two separate runs are not
comparable. Here one process times torch, an older export folder's graphs run on whole padded batches (as the
recipe-1 runner did), the newer folder's int8 graph on whole batches (the fusions alone), and the newer graphs
through :class:`lsr.models.onnx.OnnxRunner` (fusions and length groups), round after round on the same texts.

    python -m lsr.eval.bench.onnx_recipes MODEL CORPUS DOCS ROUNDS OLD_EXPORT_DIR NEW_EXPORT_DIR OUTPUT.json
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lsr.eval.bench.encode import load_texts
from lsr.eval.bench.output import save_json

from lsr.fsutil import check_file_replaceable
from lsr.models import load_encoder
from lsr.models.inference_free import InferenceFreeEncoder
from lsr.models.onnx import OnnxRunner


class WholeBatchRunner(OnnxRunner):
    """The recipe-1 runner: one graph call per padded batch."""

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        feed = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        (weights,) = self.session.run(["weights"], feed)
        return torch.from_numpy(np.ascontiguousarray(weights))


def compare(model: Path, texts: list[str], rounds: int, old: Path, new: Path) -> dict[str, Any]:
    """Median documents/s, per-round speed-ups against torch, and agreement with torch's output, per runner."""
    encoder = load_encoder(model, device="cpu")
    splade = encoder.document_encoder if isinstance(encoder, InferenceFreeEncoder) else encoder
    runners: dict[str, Any] = {
        "torch": splade.module,
        "old-fp32": WholeBatchRunner(old / "model.onnx"),
        "old-int8": WholeBatchRunner(old / "model-int8.onnx"),
        "fused-int8-whole": WholeBatchRunner(new / "model-int8.onnx"),
        "new-fp32": OnnxRunner(new / "model.onnx"),
        "new-int8": OnnxRunner(new / "model-int8.onnx"),
    }

    def run(name: str) -> Any:
        splade.runner = runners[name]
        return encoder.encode_document(texts, batch_size=32)

    for name in runners:  # warm-up
        run(name)
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, Any] = {}
    loads = []
    for _ in range(rounds):
        for name in runners:
            w, c = time.perf_counter(), time.process_time()
            outputs[name] = run(name)
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
        loads.append(os.getloadavg()[0])
    reference = outputs["torch"].toarray()
    result: dict[str, Any] = {"model": str(model), "docs": len(texts), "rounds": rounds, "load_1min_per_round": loads}
    for name in runners:
        dense = outputs[name].toarray()
        result[name] = {
            "docs_per_s": len(texts) / statistics.median(wall[name]),
            "docs_per_cpu_s": len(texts) / statistics.median(cpu[name]),
            "speedup_wall": statistics.median(t / o for t, o in zip(wall["torch"], wall[name], strict=True)),
            "speedup_cpu": statistics.median(t / o for t, o in zip(cpu["torch"], cpu[name], strict=True)),
            "nonzeros_differing": float(((dense > 0) != (reference > 0)).sum() / max((reference > 0).sum(), 1)),
            "max_abs_diff": float(np.abs(dense - reference).max()),
            "wall_s": wall[name],
            "cpu_s": cpu[name],
        }
    return result


def main(argv: list[str] | None = None) -> None:
    model, corpus, docs, rounds, old, new, output = argv or sys.argv[1:]
    check_file_replaceable(output, "json")  # before the minutes of encoding, not after
    result = compare(Path(model), load_texts(Path(corpus), int(docs)), int(rounds), Path(old), Path(new))
    save_json(result, output)
    for name, row in result.items():
        if isinstance(row, dict):
            print(f"{name:26s} {row['docs_per_s']:7.2f} docs/s  speed-up {row['speedup_wall']:.2f} wall")


if __name__ == "__main__":
    main()
