"""Mistral-SPLADE training-step benchmark: LoRA on a Mistral-shaped decoder with random weights.

One step encodes a batch of queries and of documents with lsr's ``MistralSpladeEncoder``
(echo input: ``[bos] text text``, pooling the second copy), scores them in batch
(``q @ d.T``), adds FLOPS on both sides (:mod:`lsr.train.losses`), backpropagates
into the LoRA adapters and takes an AdamW step. No weights can be downloaded, so
the backbone is built from a ``MistralConfig`` (``7b``: Mistral-7B's shape) directly
on the target device and precision; inputs are random token ids of fixed length,
so timing depends on shapes only. ``--sweep`` measures several batch sizes (and,
with ``--compare-checkpointing``, both checkpointing settings) with one model,
recording out-of-memory per configuration instead of stopping.

Runs without typer: ``python -m lsr.eval.bench.train_step --preset 7b --sweep 8,16,32``.
"""

from __future__ import annotations

import gc
import json
import platform
import resource
import statistics
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from lsr.eval.bench.output import json_output, save_json

from lsr.models.base import EncoderConfig, pick_device, pick_dtype
from lsr.models.mistral_splade import MistralSpladeEncoder
from lsr.models.sparse import splade_pool
from lsr.train.losses import flops, infonce
from lsr.train.student import set_checkpointing

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {
        "vocab_size": 1000,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
    },
    "7b": {  # Mistral-7B-v0.1's dimensions
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 4096,
    },
}
SPECIALS = ["<unk>", "<s>", "</s>"]
# transformers 5 renamed gradient checkpointing to activation checkpointing; peft still asks by the old name
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")


def random_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer with ``vocab_size`` entries (``<unk> <s> </s> t3 t4 ...``), built in memory.

    The encoder needs one for its special-token ids and echo prefix; the bench feeds token ids directly.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    vocab.update({f"t{i}": i for i in range(len(SPECIALS), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )


def random_mistral(preset: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A ``MistralForCausalLM`` of ``preset``'s shape, random weights, created on ``device`` in ``dtype``.

    Allocating and initialising under a device context and default dtype means a 7B
    model never exists in fp32 or on the host (its normal init takes a moment on a GPU,
    minutes on a CPU). The KV cache is off: training never reuses it.
    """
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        **PRESETS[preset],
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        sliding_window=None,
        tie_word_embeddings=False,
        use_cache=False,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MistralForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def echo_batch(
    batch: int, length: int, vocab_size: int, bos: int, device: torch.device, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Random texts of ``length`` tokens in the echo layout ``[bos] text text``, pooling the second copy."""
    text = torch.randint(len(SPECIALS), vocab_size, (batch, length), generator=generator)
    ids = torch.cat([torch.full((batch, 1), bos), text, text], dim=1)
    pool = torch.zeros_like(ids)
    pool[:, 1 + length :] = 1
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "pool_mask": pool.to(device),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _SavedBytes:
    """Bytes of distinct non-parameter tensors autograd saves for backward inside the context."""

    def __init__(self, parameters: Sequence[torch.Tensor]) -> None:
        self.skip = {p.untyped_storage().data_ptr() for p in parameters}
        self.seen: set[int] = set()
        self.bytes = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self.skip and key not in self.seen:
            self.seen.add(key)
            self.bytes += storage.nbytes()
        return tensor

    def __enter__(self) -> _SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def _weights(encoder: MistralSpladeEncoder, batch: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
    """Differentiable pooled weights in fp32, special tokens' dimensions zeroed (as ``encoder.weights`` does)."""
    return encoder.module(**batch).float() * keep


def _saved_split(
    encoder: MistralSpladeEncoder, batch: dict[str, torch.Tensor], autocast: bool, dtype: torch.dtype
) -> tuple[int, int]:
    """Bytes saved for backward by the backbone and by the SPLADE head, for one side of a batch.

    The module's forward is taken apart here (backbone, then ``splade_pool``) so the two
    can be counted separately. Under non-reentrant checkpointing the layers' own saved
    tensors are recomputed in backward and not counted (their inputs, kept by the
    checkpoint, are not either).
    """
    module = encoder.module
    params = list(module.parameters())
    with torch.autocast(encoder.device.type, dtype=dtype, enabled=autocast):
        with _SavedBytes(params) as backbone:
            hidden = module.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with _SavedBytes(params) as head:
            weight = module.projection.weight
            pooled = splade_pool(
                hidden, weight.to(hidden.dtype), None, batch["pool_mask"], module.pooling, module.vocab_chunk
            )
    del hidden, pooled
    return backbone.bytes, head.bytes


def _saved_report(
    encoder: MistralSpladeEncoder,
    queries: dict[str, torch.Tensor],
    docs: dict[str, torch.Tensor],
    autocast_dtype: torch.dtype | None,
    tokens: int,
) -> dict[str, Any]:
    """Saved-for-backward bytes of one step (backbone and vocabulary head), and one copy of the projected logits.

    The one-copy figure counts the positions the head projects: all of them on a GPU
    (padded layout, so both echo copies), only the pooled ones on the CPU (packed).
    """
    autocast = autocast_dtype is not None
    dtype = autocast_dtype or torch.bfloat16
    pooled_rows = int(queries["pool_mask"].sum() + docs["pool_mask"].sum())
    rows = tokens if encoder.device.type == "cuda" else pooled_rows
    item = 2 if autocast else encoder.module.projection.weight.element_size()
    vocab = encoder.module.projection.weight.shape[0]
    try:
        q_backbone, q_head = _saved_split(encoder, queries, autocast, dtype)
        d_backbone, d_head = _saved_split(encoder, docs, autocast, dtype)
    except torch.OutOfMemoryError as exc:
        return {"saved_bytes_error": str(exc).split("\n")[0]}
    return {
        "saved_backbone_gib": (q_backbone + d_backbone) / 2**30,
        "saved_vocab_head_gib": (q_head + d_head) / 2**30,
        "vocab_logits_one_copy_gib": rows * vocab * item / 2**30,
    }


def _run_config(
    encoder: MistralSpladeEncoder,
    batch_size: int,
    query_length: int,
    doc_length: int,
    steps: int,
    warmup_steps: int,
    lr: float,
    lambda_q: float,
    lambda_d: float,
    autocast_dtype: torch.dtype | None,
    checkpointing: bool,
    seed: int,
    measure_saved: bool,
) -> dict[str, Any]:
    device = encoder.device
    vocab = encoder.module.projection.weight.shape[0]
    bos = encoder.tokenizer.bos_token_id
    generator = torch.Generator().manual_seed(seed)
    queries = echo_batch(batch_size, query_length, vocab, bos, device, generator)
    docs = echo_batch(batch_size, doc_length, vocab, bos, device, generator)
    keep = torch.ones(vocab, device=device)
    keep[encoder.special_ids] = 0
    trainable = [p for p in encoder.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    autocast = autocast_dtype is not None
    set_checkpointing(encoder.module.backbone, checkpointing)
    encoder.module.train()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    losses, seconds, parts = [], [], {}
    for step in range(warmup_steps + steps):
        _sync(device)
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast):
            q = _weights(encoder, queries, keep)
            d = _weights(encoder, docs, keep)
        ranking = infonce(q @ d.T)
        q_flops, d_flops = flops(q), flops(d)
        loss = ranking + lambda_q * q_flops + lambda_d * d_flops
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss, ranking, q_flops, d_flops = loss.detach(), ranking.detach(), q_flops.detach(), d_flops.detach()
        _sync(device)
        elapsed = time.perf_counter() - started
        losses.append(loss.item())
        parts = {"infonce": ranking.item(), "flops_q": q_flops.item(), "flops_d": d_flops.item()}
        if step >= warmup_steps:
            seconds.append(elapsed)
        del q, d, loss, ranking, q_flops, d_flops
    result: dict[str, Any] = {
        "batch_size": batch_size,
        "gradient_checkpointing": checkpointing,
        "query_input_length": queries["input_ids"].shape[1],
        "doc_input_length": docs["input_ids"].shape[1],
        "step_s_mean": statistics.fmean(seconds),
        "step_s_p50": statistics.median(seconds),
        "step_s_min": min(seconds),
        "step_s_max": max(seconds),
    }
    mean = result["step_s_mean"]
    tokens = batch_size * (result["query_input_length"] + result["doc_input_length"])
    result.update(
        {
            "pairs_per_s": batch_size / mean,
            "sequences_per_s": 2 * batch_size / mean,
            "input_tokens_per_s": tokens / mean,
            "text_tokens_per_s": batch_size * (query_length + doc_length) / mean,
            "losses": losses,
            "last_loss_parts": parts,
        }
    )
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if measure_saved:  # after the timed steps: the hooks cost Python time per saved tensor
        optimizer.zero_grad(set_to_none=True)
        del optimizer
        result.update(_saved_report(encoder, queries, docs, autocast_dtype, tokens))
    return result


def run_bench(
    preset: str = "tiny",
    batch_sizes: Sequence[int] = (8,),
    query_length: int = 32,
    doc_length: int = 256,
    steps: int = 5,
    warmup_steps: int = 2,
    device: str = "auto",
    dtype: str = "auto",
    checkpointing: Sequence[bool] = (True,),
    lr: float = 1e-4,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    lambda_q: float = 3e-4,
    lambda_d: float = 1e-4,
    vocab_chunk: int = 8192,
    seed: int = 0,
    measure_saved: bool = True,
) -> dict[str, Any]:
    """Build the model once, then time training steps for each checkpointing setting and batch size.

    Batch sizes run smallest first; after an out-of-memory error the larger ones of the
    same checkpointing setting are reported as skipped. The adapters keep training from
    one configuration to the next (each gets a fresh optimizer): only the first
    configuration's ``losses`` start from the untrained model.
    """
    import peft
    import transformers

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    torch.manual_seed(seed)
    started = time.perf_counter()
    backbone = random_mistral(preset, dev, torch_dtype)
    _sync(dev)
    init_s = time.perf_counter() - started
    config = EncoderConfig(kind="mistral-splade", vocab_chunk=vocab_chunk)
    encoder = MistralSpladeEncoder(backbone, random_tokenizer(PRESETS[preset]["vocab_size"]), config, dev, torch_dtype)
    encoder.enable_lora(r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
    total = sum(p.numel() for p in encoder.module.parameters())
    trainable = sum(p.numel() for p in encoder.module.parameters() if p.requires_grad)
    weights_gib = torch.cuda.memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    autocast_dtype = torch_dtype if torch_dtype in (torch.bfloat16, torch.float16) else None
    runs: list[dict[str, Any]] = []
    for ckpt in checkpointing:
        failed_at: int | None = None
        for batch_size in sorted(batch_sizes):
            if failed_at is not None:
                runs.append({"batch_size": batch_size, "gradient_checkpointing": ckpt, "skipped_after_oom": failed_at})
                continue
            try:
                runs.append(
                    _run_config(
                        encoder,
                        batch_size,
                        query_length,
                        doc_length,
                        steps,
                        warmup_steps,
                        lr,
                        lambda_q,
                        lambda_d,
                        autocast_dtype,
                        ckpt,
                        seed,
                        measure_saved,
                    )
                )
            except torch.OutOfMemoryError as exc:
                failed_at = batch_size
                runs.append({"batch_size": batch_size, "gradient_checkpointing": ckpt, "oom": str(exc).split("\n")[0]})
            for p in encoder.module.parameters():  # a failed step may leave gradients behind
                p.grad = None
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            print(json.dumps(runs[-1]), flush=True)
    return {
        "benchmark": "mistral-splade train step (LoRA, echo, in-batch InfoNCE + FLOPS, AdamW)",
        "preset": preset,
        "model_config": PRESETS[preset],
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu: {platform.processor() or platform.machine()}",
        "dtype": str(torch_dtype).removeprefix("torch."),
        "autocast": autocast_dtype is not None,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "parameters_total": total,
        "parameters_trainable": trainable,
        "trainable_fraction": trainable / total,
        "model_init_s": init_s,
        "weights_memory_gib": weights_gib,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "query_length": query_length,
        "doc_length": doc_length,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "lr": lr,
        "lora": {"r": lora_r, "alpha": lora_alpha, "dropout": lora_dropout},
        "lambda_q": lambda_q,
        "lambda_d": lambda_d,
        "vocab_chunk": vocab_chunk,
        "runs": runs,
    }


def parse_sizes(text: str) -> list[int]:
    """``"8,16,32"`` to ``[8, 16, 32]``."""
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"batch sizes must be positive integers, got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> None:
    """Entry for the device machine: argparse only, no typer."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sweep", help="comma-separated batch sizes, measured in one process (overrides --batch-size)")
    parser.add_argument("--query-length", type=int, default=32)
    parser.add_argument("--doc-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--compare-checkpointing", action="store_true", help="run every batch size with and without checkpointing"
    )
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--no-saved-bytes", action="store_true", help="skip the saved-for-backward measurement")
    parser.add_argument("--output", type=json_output)
    args = parser.parse_args(argv)
    ckpt = (True, False) if args.compare_checkpointing else (args.gradient_checkpointing,)
    result = run_bench(
        preset=args.preset,
        batch_sizes=parse_sizes(args.sweep) if args.sweep else [args.batch_size],
        query_length=args.query_length,
        doc_length=args.doc_length,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        device=args.device,
        dtype=args.dtype,
        checkpointing=ckpt,
        lr=args.lr,
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        measure_saved=not args.no_saved_bytes,
    )
    print(json.dumps(result, indent=2))
    if args.output:
        save_json(result, args.output)


if __name__ == "__main__":
    main()
