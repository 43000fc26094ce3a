"""Mistral-SPLADE with LoRA trains end to end on a tiny random decoder (the 7B benchmark's CPU stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

from lsr.eval.bench.train_step import main, run_bench
from typer.testing import CliRunner

from lsr.cli import app


def test_train_step_bench_fields_and_lora_learns() -> None:
    result = run_bench(
        preset="tiny",
        batch_sizes=[4],
        query_length=8,
        doc_length=24,
        steps=6,
        warmup_steps=0,
        device="cpu",
        lr=1e-3,
        lora_dropout=0.0,
        checkpointing=(True,),
    )
    assert 0 < result["parameters_trainable"] < result["parameters_total"]
    (run,) = result["runs"]
    for field in ("step_s_mean", "step_s_p50", "sequences_per_s", "input_tokens_per_s", "saved_vocab_head_gib"):
        assert run[field] > 0
    assert run["query_input_length"] == 1 + 2 * 8 and run["doc_input_length"] == 1 + 2 * 24  # echo layout
    losses = run["losses"]  # the same batch every step: the adapters must fit it
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    # the vocabulary head keeps about one copy of the pooled logits for backward, not more
    assert run["saved_vocab_head_gib"] < 2 * run["vocab_logits_one_copy_gib"]


def test_train_step_entry_points(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    main(["--device", "cpu", "--sweep", "2,3", "--query-length", "4", "--doc-length", "8", "--steps", "1",
          "--warmup-steps", "0", "--compare-checkpointing", "--no-saved-bytes", "--output", str(out)])  # fmt: skip
    runs = json.loads(out.read_text())["runs"]
    assert [(r["batch_size"], r["gradient_checkpointing"]) for r in runs] == [
        (2, True),
        (3, True),
        (2, False),
        (3, False),
    ]
    result = CliRunner().invoke(
        app,
        ["bench", "train-step", "--device", "cpu", "--batch-size", "2", "--query-length", "4", "--doc-length", "8",
         "--steps", "1", "--warmup-steps", "0", "--no-gradient-checkpointing", "--output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["runs"][0]["gradient_checkpointing"] is False
