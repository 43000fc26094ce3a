"""Encoding throughput: lsr's SPLADE against sentence-transformers' ``SparseEncoder`` on the same texts and model.

Both load the same folder, run at the same precision and batch size over the same
texts, after one warm-up batch each; outputs are compared so a speed-up cannot
come from computing something else. Also: microseconds per query of the
inference-free query encoder, and Mistral-SPLADE document throughput.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lsr.eval.bench.output import json_output, save_json

from lsr.models import InferenceFreeEncoder, MistralSpladeEncoder, SpladeEncoder
from lsr.models.base import pick_device, pick_dtype


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(run: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    _sync(device)
    started = time.perf_counter()
    out = run()
    _sync(device)
    return time.perf_counter() - started, out


def random_splade(
    tokenizer_dir: Path, folder: Path, texts: list[str], layers: int = 12, hidden: int = 768, active: int = 300
) -> Path:
    """A BERT-base-size masked LM with random weights (speed only).

    Random weights make about half the vocabulary active; the output bias is set so
    that documents of ``texts`` get about ``active`` terms, as a trained SPLADE does
    (SPLADE-tiny gives 252 on SciFact), since sparsity drives the cost of the output.
    """
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=False)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():
        model.cls.predictions.bias.zero_()
        batch = tokenizer(texts[:32], padding=True, truncation=True, max_length=256, return_tensors="pt")
        pooled = model(**batch).logits.masked_fill(~batch["attention_mask"].bool().unsqueeze(-1), -1e4).amax(1)
        model.cls.predictions.bias.fill_(-float(pooled.float().quantile(1 - active / config.vocab_size)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def bench_splade(
    model_dir: Path,
    texts: list[str],
    device: str = "cpu",
    dtype: str = "auto",
    batch_size: int = 32,
    max_length: int = 256,
) -> dict[str, Any]:
    """Documents per second for lsr and sentence-transformers on ``texts``, and how far their outputs differ."""
    from sentence_transformers import SparseEncoder

    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    ours = SpladeEncoder.from_pretrained(model_dir, device=dev, dtype=torch_dtype, max_length=max_length)
    theirs = SparseEncoder(
        str(model_dir), device=str(dev), model_kwargs={"dtype": torch_dtype}, trust_remote_code=False
    )
    theirs.max_seq_length = max_length

    def run_theirs(batch: list[str]) -> Any:
        return theirs.encode_document(batch, batch_size=batch_size, convert_to_sparse_tensor=True)

    # a full warm-up pass each, so that neither pays for kernel planning of new shapes in the timed pass
    ours.encode_document(texts, batch_size=batch_size)
    run_theirs(texts)
    ours_s, ours_out = _timed(lambda: ours.encode_document(texts, batch_size=batch_size), dev)
    theirs_s, theirs_out = _timed(lambda: run_theirs(texts), dev)
    reference = theirs_out.to_dense().float().cpu().numpy()
    reference[:, ours.special_ids] = 0  # lsr drops special tokens' dimensions; compare the rest
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "dtype": str(torch_dtype).removeprefix("torch."),
        "documents": len(texts),
        "batch_size": batch_size,
        "max_length": max_length,
        "lsr_docs_per_s": len(texts) / ours_s,
        "st_docs_per_s": len(texts) / theirs_s,
        "speedup": theirs_s / ours_s,
        "avg_active_terms": ours_out.nnz / len(texts),
        "max_abs_diff": float(np.abs(ours_out.toarray() - reference).max()),
    }


def bench_idf_queries(encoder: InferenceFreeEncoder, queries: list[str], repeats: int = 3) -> dict[str, Any]:
    """Microseconds per query for the inference-free query encoder, one query at a time on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_query = []
        for _ in range(repeats):
            for query in queries:
                started = time.perf_counter()
                encoder.encode_query([query])
                per_query.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    per_query.sort()
    return {
        "queries": len(queries),
        "p50_us": 1e6 * statistics.median(per_query),
        "p99_us": 1e6 * per_query[int(0.99 * (len(per_query) - 1))],
        "mean_us": 1e6 * statistics.fmean(per_query),
    }


def bench_mistral_7b(
    tokenizer_dir: Path, texts: list[str], batch_size: int = 16, max_length: int = 256, layers: int = 32
) -> dict[str, Any]:
    """Mistral-SPLADE document throughput at 7B scale (Mistral-7B's shape, random weights, bf16, SDPA, echo)."""
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=False)
    config = MistralConfig(num_hidden_layers=layers, vocab_size=32000)  # Mistral-7B-v0.1's dimensions
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = MistralForCausalLM(config)
    finally:
        torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    encoder = MistralSpladeEncoder(model, tokenizer, device="cuda", dtype="bf16")
    encoder.config.max_length = max_length
    encoder.encode_document(texts, batch_size=batch_size)
    torch.cuda.reset_peak_memory_stats()
    seconds, out = _timed(lambda: encoder.encode_document(texts, batch_size=batch_size), torch.device("cuda"))
    tokens = sum(len(seq) for seq, _ in encoder.tokenize(texts))
    return {
        "parameters": params,
        "documents": len(texts),
        "batch_size": batch_size,
        "max_length": max_length,
        "docs_per_s": len(texts) / seconds,
        "input_tokens_per_s": tokens / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "avg_active_terms": out.nnz / len(texts),
        "device": torch.cuda.get_device_name(),
    }


def load_texts(corpus: Path, count: int) -> list[str]:
    """The first ``count`` documents of a BEIR corpus as title + text."""
    from itertools import islice

    from lsr.data.beir import corpus_source, read_corpus
    from lsr.encode.corpus import document_text

    return [document_text(d) for d in islice(read_corpus(corpus_source(corpus)), count)]


def main(argv: list[str] | None = None) -> None:
    """Entry for the device machine, where only the Python environment (no console script) is assumed."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["splade", "splade-random-base", "mistral-7b"])
    parser.add_argument("--model", type=Path, required=True, help="model folder (or tokenizer folder for random)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--output", type=json_output)
    args = parser.parse_args(argv)
    texts = load_texts(args.corpus, args.docs)
    if args.what == "mistral-7b":
        result = bench_mistral_7b(args.model, texts, args.batch_size, args.max_length)
    elif args.what == "splade-random-base":
        with tempfile.TemporaryDirectory() as tmp:
            folder = random_splade(args.model, Path(tmp) / "bert-base-random", texts)
            result = bench_splade(folder, texts, args.device, args.dtype, args.batch_size, args.max_length)
            result["model"] = "BERT-base-size SPLADE, random weights"
    else:
        result = bench_splade(args.model, texts, args.device, args.dtype, args.batch_size, args.max_length)
        result["model"] = str(args.model)
    print(json.dumps(result, indent=2))
    if args.output:
        save_json(result, args.output)


if __name__ == "__main__":
    main()
