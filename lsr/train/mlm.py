"""Masked-language-model warm-up: give a fresh vocabulary head (or a new domain) a start before SPLADE training.

A sentence-transformers backbone such as all-MiniLM-L6-v2 ships without an MLM
head; ``AutoModelForMaskedLM`` adds a fresh one tied to the word embeddings. Its
logits are noise at first, so the SPLADE weights they would give are noise too.
A short run of BERT's masked-token objective on the target corpora trains the head
to map contextual states back to the vocabulary (and adapts the backbone to the
domain) without any label. The result is a plain ``*ForMaskedLM`` folder.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lsr.data.beir import BeirDataset
from lsr.encode.corpus import document_text
from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.models.base import pick_device
from lsr.models.dense import DEFAULT_DENSE, default_dense_path
from lsr.models.hub import resolve_model
from lsr.safeload import refusing_code


def mlm_warmup(
    model: str,
    corpora: Sequence[str | Path],
    output: str | Path,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-4,
    max_length: int = 256,
    mask_probability: float = 0.15,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Train ``model`` (with a new MLM head if it has none) on the corpora's texts; returns first/last loss."""
    import transformers

    folder = default_dense_path() if model == DEFAULT_DENSE else resolve_model(model)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    target = pick_device(device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    # float32 master weights whatever the checkpoint holds (an fp16 checkpoint would load as fp16 and overflow)
    with refusing_code(folder):
        network = transformers.AutoModelForMaskedLM.from_pretrained(
            folder, dtype=torch.float32, trust_remote_code=False
        )
    network = network.to(target).train()
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=mask_probability)
    texts = [document_text(doc) for path in corpora for doc in BeirDataset(path).corpus()]
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    use_bf16 = target.type == "cuda"
    losses: list[float] = []
    for _ in tqdm(range(steps), desc="mlm", unit=" steps"):
        ids = tokenizer(rng.sample(texts, min(batch_size, len(texts))), truncation=True, max_length=max_length)
        inputs = {k: v.to(target) for k, v in collator([{"input_ids": row} for row in ids["input_ids"]]).items()}
        with torch.autocast(target.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = network(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise LsrError(f"MLM loss is {losses[-1]} at step {len(losses)}: lower --lr")
    window = max(1, min(50, steps // 5))
    summary = {
        "first_loss": sum(losses[:window]) / window,
        "last_loss": sum(losses[-window:]) / window,
        "steps": steps,
        "texts": len(texts),
    }
    with atomic_dir(output) as tmp:
        network.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "mlm.json").write_text(json.dumps({**summary, "model": str(model)}, indent=2))
    return summary
