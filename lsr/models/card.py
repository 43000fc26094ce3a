"""The README.md model card that ``save_pretrained`` writes beside a sparse encoder's weights.

Why: a folder pushed to the Hugging Face Hub (``lsr push``) is read by people, not by lsr; the card says what the
model is, how it was trained and what it scored (when ``lsr_config.json``'s ``extra`` records ``training`` and
``results``), and how to load it in lsr and in sentence-transformers. A card someone else wrote is worth more than
one generated, so a card without :data:`CARD_MARK` is carried over unchanged when lsr rewrites the folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsr.models.base import EncoderConfig

CARD_FILE = "README.md"
CARD_MARK = "<!-- written by lsr: rewritten on every save; delete this line to keep your edits -->"

WHAT = {
    "splade": "a SPLADE encoder: texts become sparse vectors over the vocabulary (one weight per token, most zero), "
    "by the same model for queries and documents.",
    "inference-free": "an inference-free sparse encoder: documents are encoded by a SPLADE model, queries need no "
    "model at all (each query token weighted by the IDF table in `idf.json`, the layout of OpenSearch's models).",
    "mistral-splade": "a SPLADE encoder over a decoder language model, pooling the echoed copy of each text.",
}


@dataclass(frozen=True)
class ModelCard:
    """What an encoder tells its card."""

    kind: str
    config: EncoderConfig
    architecture: str
    vocabulary: int
    sentence_transformers: bool


def _table(rows: dict[str, Any]) -> list[str]:
    return ["| | |", "| --- | --- |", *(f"| {key} | {value} |" for key, value in rows.items())]


def _results(results: dict[str, Any]) -> list[str]:
    """``{metric: value}`` or ``{dataset: {metric: value}}`` as a table."""
    if all(not isinstance(v, dict) for v in results.values()):
        return _table(results)
    metrics = sorted({m for scores in results.values() if isinstance(scores, dict) for m in scores})
    lines = ["| dataset | " + " | ".join(metrics) + " |", "| --- |" + " ---: |" * len(metrics)]
    for name, scores in results.items():
        scores = scores if isinstance(scores, dict) else {}
        lines.append(f"| {name} | " + " | ".join(str(scores.get(m, "")) for m in metrics) + " |")
    return lines


def render(card: ModelCard, name: str) -> str:
    """The card's Markdown (Hub metadata first)."""
    config = card.config
    settings = {
        "backbone": card.architecture,
        "vocabulary (dimensions)": f"{card.vocabulary:,}",
        "pooling": config.pooling,
        "activation": "log(1 + relu(x))" if config.activation == "relu" else "log(1 + log(1 + relu(x)))",
        "token limit": config.max_length,
        "non-zeros kept per vector": config.top_k or "all",
        "special tokens' dimensions": "zeroed" if config.zero_special else "kept",
    }
    training = config.extra.get("training")
    results = config.extra.get("results")
    tags = ["lsr", "learned sparse retrieval", "sparse-encoder", card.kind]
    lines = ["---", "library_name: lsr", "tags:", *(f"  - {t}" for t in tags), "---", CARD_MARK, "", f"# {name}", ""]
    lines += [f"An lsr model: {WHAT.get(card.kind, card.kind)}", "", *_table(settings), "", "## How it was trained", ""]
    if isinstance(training, dict):
        lines += [f"- {key}: {value}" for key, value in training.items()]
    else:
        lines.append(str(training) if training else "Not recorded (`lsr_config.json` has no `extra.training`).")
    lines += ["", "## Results", ""]
    lines += _results(results) if isinstance(results, dict) else ["None recorded (`extra.results`)."]
    lines += ["", "## Load it", "", "```python", "from lsr.models import load_encoder", ""]
    lines += [f'model = load_encoder("{name}")  # a folder or a Hugging Face id', 'model.encode_document(["a text"])']
    lines.append("```")
    if card.sentence_transformers:
        lines += ["", "```python", "from sentence_transformers import SparseEncoder", ""]
        lines += [f'model = SparseEncoder("{name}")  # the same vectors', 'model.encode_query(["a query"])', "```"]
    return "\n".join(lines) + "\n"


def write_card(folder: Path, target: Path, card: ModelCard) -> None:
    """``folder/README.md`` for a model about to replace ``target``: lsr's card, or the one already at ``target``.

    ``folder`` is the temporary folder of :func:`lsr.fsutil.atomic_dir`, so the card lands with the weights or not
    at all.
    """
    existing = target / CARD_FILE
    if existing.is_file() and CARD_MARK not in existing.read_text(encoding="utf-8", errors="replace"):
        shutil.copyfile(existing, folder / CARD_FILE)
        return
    (folder / CARD_FILE).write_text(render(card, target.name), encoding="utf-8")
