"""``lsr train``: prepare teacher-scored data, warm up an MLM head, train sparse encoders, adapt to a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from lsr.cli_force import writes

if TYPE_CHECKING:
    from lsr.train.trainer import TrainConfig

app = typer.Typer(help="Train sparse encoders: data preparation, MLM warm-up, training, label-free adaptation.")
console = Console()

DEFAULT_TEACHERS = "bm25,dense"
TeachersOption = Annotated[
    str,
    typer.Option(help="Teacher ensemble: bm25, dense[=MODEL], sparse=MODEL, each optionally @WEIGHT."),
]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
MaxMinutesOption = Annotated[
    float | None, typer.Option(min=0.0, help="Save a checkpoint and stop after this long (continue with --resume).")
]
ResumeOption = Annotated[bool, typer.Option(help="Continue from the latest checkpoint in OUTPUT.")]
PseudoHoldoutOption = Annotated[
    int,
    typer.Option(min=0, help="Pseudo-queries held out of training (split 'pseudo'; at most a tenth of them)."),
]
PseudoMaxShareOption = Annotated[
    float,
    typer.Option(
        min=0.01,
        max=1.0,
        help="Largest share of a sentence a pseudo-query keeps; below 1 no query repeats a one-line document.",
    ),
]

RerankOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Dense and sparse teachers score only the top N of the bm25/run teachers for each query instead of "
        "searching the whole corpus (no full encoding of a large corpus).",
    ),
]


@app.command("prepare")
@writes("output")
def prepare_command(
    dataset: Annotated[Path, typer.Option(help="BEIR folder or zip.", exists=True)],
    output: Annotated[Path, typer.Option(help="Training folder to write.")],
    split: Annotated[str | None, typer.Option(help="Labelled split to train on (e.g. train).")] = None,
    holdout: Annotated[int, typer.Option(min=0, help="Queries of --split held out as the dev split.")] = 0,
    pseudo_queries: Annotated[int, typer.Option(min=0, help="Pseudo-queries per document (label-free).")] = 0,
    pseudo_holdout: PseudoHoldoutOption = 0,
    pseudo_max_share: PseudoMaxShareOption = 1.0,
    teachers: TeachersOption = DEFAULT_TEACHERS,
    depth: Annotated[int, typer.Option(min=1, help="Documents each teacher retrieves per query.")] = 100,
    pool: Annotated[int, typer.Option(min=1, help="Top documents per teacher kept as candidates.")] = 30,
    guard: Annotated[float, typer.Option(min=0.0, max=1.0, help="False-negative guard (x weakest positive).")] = 0.95,
    keep: Annotated[int, typer.Option(min=1, help="Hard negatives kept per query.")] = 30,
    max_queries: Annotated[int | None, typer.Option(min=1, help="Seeded sample of the training queries.")] = None,
    rerank: RerankOption = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Encodings/index cache (default $LSR_CACHE).")] = None,
    seed: int = 0,
) -> None:
    """Score training queries' candidates with a teacher ensemble and write a self-contained training folder."""
    from lsr.train.prepare import prepare
    from lsr.train.teachers import parse_teachers

    summary = prepare(
        dataset,
        output,
        parse_teachers(teachers),
        split,
        holdout,
        pseudo_queries,
        pseudo_holdout,
        max_queries,
        depth,
        pool,
        guard,
        keep,
        cache_dir,
        seed,
        pseudo_max_share,
        rerank,
    )
    console.print(f"{summary['examples']:,} examples ({summary['holdout']} dev queries held out) at {output}")


@app.command("mlm")
@writes("output")
def mlm_command(
    model: Annotated[str, typer.Option(help="Backbone folder, Hub id or all-minilm-l6-v2.")],
    corpus: Annotated[list[Path], typer.Option(help="BEIR folder(s) whose texts to train on.", exists=True)],
    output: Annotated[Path, typer.Option(help="Folder for the *ForMaskedLM model.")],
    steps: Annotated[int, typer.Option(min=1)] = 1000,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: float = 1e-4,
    max_length: Annotated[int, typer.Option(min=8)] = 256,
    device: DeviceOption = "auto",
    seed: int = 0,
) -> None:
    """Masked-language-model warm-up of a (fresh) vocabulary head on corpus text, no labels needed."""
    from lsr.train.mlm import mlm_warmup

    summary = mlm_warmup(model, corpus, output, steps, batch_size, lr, max_length, device=device, seed=seed)
    console.print(f"MLM loss {summary['first_loss']:.3f} -> {summary['last_loss']:.3f}; saved to {output}")


def _train(
    model: str,
    data: list[Path],
    output: Path,
    kind: str | None,
    learn_idf: bool,
    lora: bool,
    gradient_checkpointing: bool,
    resume: bool,
    device: str,
    config: TrainConfig,
    max_length: int | None = None,
) -> Path:
    from lsr.train.data import TrainingSet
    from lsr.train.student import load_student
    from lsr.train.trainer import Trainer, check_dev, latest_checkpoint

    check_dev(config.dev)
    checkpoint = latest_checkpoint(output) if resume else None
    start = str(checkpoint) if checkpoint else model
    target = None if device == "auto" else device
    student = load_student(start, kind, data, learn_idf, lora, gradient_checkpointing, target, max_length)
    training = TrainingSet(data, config.group_size, config.negative_depth)
    trainer = Trainer(student, training, output, config)
    if checkpoint:
        trainer.load_state(checkpoint)
        console.print(f"resumed from {checkpoint} (step {trainer.step})")
    return trainer.train()


@app.command("run")
@writes("output", in_place=True)
def run_command(
    model: Annotated[str, typer.Option(help="Starting model: encoder folder, *ForMaskedLM/*ForCausalLM, Hub id.")],
    data: Annotated[list[Path], typer.Option(help="Training folder(s) from `lsr train prepare`.", exists=True)],
    output: Annotated[Path, typer.Option(help="Run folder: model/, checkpoints/, log.jsonl, training.png.")],
    kind: Annotated[
        str | None, typer.Option(help="inference-free, splade or mistral-splade (default: model's).")
    ] = None,
    dev: Annotated[list[str] | None, typer.Option(help="Dev split DIR[:SPLIT] (default: dev); repeatable.")] = None,
    steps: Annotated[int, typer.Option(min=1)] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Queries per batch.")] = 32,
    group_size: Annotated[int, typer.Option(min=1, help="Documents per query (positive + negatives).")] = 8,
    grad_accum: Annotated[int, typer.Option(min=1)] = 1,
    lr: float = 5e-5,
    idf_lr: float = 1e-3,
    learn_idf: Annotated[bool, typer.Option(help="Inference-free: train the IDF table.")] = True,
    warmup_steps: Annotated[int, typer.Option(min=0)] = 100,
    kl_weight: float = 1.0,
    nce_weight: float = 1.0,
    margin_weight: Annotated[
        float, typer.Option(help="MarginMSE weight (teacher margins in temperature units).")
    ] = 0.0,
    teacher_temperature: Annotated[float, typer.Option(min=1e-4)] = 0.05,
    lambda_d: float = 1e-3,
    lambda_q: float = 1e-3,
    lambda_warmup: Annotated[int, typer.Option(min=0)] = 1000,
    idf_power: Annotated[float, typer.Option(help="IDF-aware FLOPS: weight (mean IDF / IDF)^power; 0: plain.")] = 1.0,
    regularizer: Annotated[str, typer.Option(help="flops (IDF-aware for inference-free) or l1.")] = "flops",
    eval_every: Annotated[int, typer.Option(min=1)] = 500,
    save_every: Annotated[int, typer.Option(min=1)] = 500,
    max_minutes: MaxMinutesOption = None,
    lora: Annotated[bool, typer.Option(help="Decoder students: train LoRA adapters only.")] = False,
    gradient_checkpointing: bool = False,
    max_length: Annotated[int | None, typer.Option(min=8, help="Document token limit (default: the model's).")] = None,
    precision: Annotated[str, typer.Option(help="auto (bf16 autocast on GPU), bf16 or fp32.")] = "auto",
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    seed: int = 0,
) -> None:
    """Train a sparse encoder by ensemble distillation + InfoNCE with (IDF-aware) FLOPS."""
    from lsr.train.trainer import TrainConfig

    config = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        group_size=group_size,
        grad_accum=grad_accum,
        lr=lr,
        idf_lr=idf_lr,
        warmup_steps=warmup_steps,
        kl_weight=kl_weight,
        nce_weight=nce_weight,
        teacher_temperature=teacher_temperature,
        lambda_d=lambda_d,
        lambda_q=lambda_q,
        lambda_warmup=lambda_warmup,
        idf_power=idf_power,
        regularizer=regularizer,
        eval_every=eval_every,
        save_every=save_every,
        max_minutes=max_minutes,
        precision=precision,
        seed=seed,
        dev=list(dev or []),
    )
    folder = _train(
        model, data, output, kind, learn_idf, lora, gradient_checkpointing, resume, device, config, max_length
    )
    console.print(f"model at {folder}")


@app.command("evaluate")
@writes("output", file_kind="json")
def evaluate_command(
    model: Annotated[str, typer.Option(help="Sparse encoder folder.")],
    dataset: Annotated[list[str], typer.Option(help="BEIR DIR[:SPLIT] (default split: dev); repeatable.")],
    max_length: Annotated[int | None, typer.Option(min=8, help="Document token limit (default: the model's).")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here too.")] = None,
    device: DeviceOption = "auto",
) -> None:
    """nDCG@10 by exact search, document/query non-zeros and FLOPS of a sparse model (what training reports)."""
    import json
    from dataclasses import asdict

    from lsr.fsutil import atomic_file
    from lsr.models import load_encoder
    from lsr.train.evaluate import dev_evaluation
    from lsr.train.trainer import check_dev, dev_split

    check_dev(dataset)
    encoder = load_encoder(model, device=device, **({"max_length": max_length} if max_length else {}))
    results = [asdict(dev_evaluation(encoder, *dev_split(spec))) for spec in dataset]
    for result in results:
        console.print(result)
    if output:
        with atomic_file(output) as handle:
            json.dump({"model": model, "max_length": max_length, "results": results}, handle, indent=2)


@app.command("weights")
@writes("output", file_kind="json")
def weights_command(
    dataset: Annotated[Path, typer.Option(help="BEIR folder or zip whose qrels judge the runs.", exists=True)],
    split: Annotated[str, typer.Option(help="Labelled split (dev or train; never the test split you report).")],
    run: Annotated[list[Path], typer.Option(help="One teacher's TREC run on that split's queries; repeatable.")],
    grid: Annotated[str, typer.Option(help="Weights tried for each teacher after the first (fixed at 1).")] = (
        "0,0.25,0.5,0.75,1,1.5,2,3"
    ),
    pool: Annotated[int, typer.Option(min=1, help="Top documents per teacher fused, as `prepare --pool`.")] = 30,
    top: Annotated[int, typer.Option(min=1, help="Weightings printed, best first.")] = 10,
    output: Annotated[Path | None, typer.Option(help="Write every weighting's scores as JSON here too.")] = None,
) -> None:
    """Teacher weights for `prepare --teachers ...@W`: each weighting's ensemble scored on a labelled split."""
    import json

    from rich.table import Table

    from lsr.data.beir import BeirDataset
    from lsr.errors import LsrError
    from lsr.fsutil import atomic_file
    from lsr.metrics import evaluate
    from lsr.runs import read_run
    from lsr.train.weights import search

    try:
        values = [float(part) for part in grid.split(",") if part.strip()]
    except ValueError:
        raise LsrError(f"--grid: comma-separated weights, e.g. 0,0.5,1,2; got {grid!r}") from None
    if not values or min(values) < 0:
        raise LsrError(f"--grid: weights must be >= 0, at least one; got {grid!r}")
    qrels = BeirDataset(dataset).qrels(split)
    runs = [read_run(path) for path in run]
    results = search(runs, qrels, values, pool)
    table = Table(title=f"teacher ensembles on {dataset.name} {split} ({len(qrels)} queries, trec_eval -c)")
    for name in ("weights", *results[0].metrics):
        table.add_column(name, justify="left" if name == "weights" else "right")
    alone = [evaluate(qrels, r, list(results[0].metrics), complete=True).aggregate for r in runs]
    for result in results[:top]:
        table.add_row(",".join(f"{w:g}" for w in result.weights), *(f"{v:.4f}" for v in result.metrics.values()))
    for path, metrics in zip(run, alone, strict=True):
        table.add_row(f"{path.parent.name}/{path.name} alone", *(f"{v:.4f}" for v in metrics.values()))
    console.print(table)
    if output:
        with atomic_file(output) as handle:
            rows = [{"weights": list(r.weights), **r.metrics} for r in results]
            json.dump(
                {"runs": [str(p) for p in run], "split": split, "pool": pool, "weightings": rows}, handle, indent=2
            )


@app.command("adapt")
@writes("output", in_place=True)
def adapt_command(
    corpus: Annotated[Path, typer.Option(help="BEIR folder or zip of the target corpus (no labels).", exists=True)],
    model: Annotated[str, typer.Option(help="Starting sparse model (folder or Hub id).")],
    output: Annotated[Path, typer.Option(help="Run folder; the adapted model is OUTPUT/model.")],
    teachers: TeachersOption = DEFAULT_TEACHERS,
    pseudo_queries: Annotated[int, typer.Option(min=1, help="Pseudo-queries per document.")] = 3,
    pseudo_holdout: PseudoHoldoutOption = 200,
    pseudo_max_share: PseudoMaxShareOption = 1.0,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Training folder from `lsr train prepare` (e.g. made where Java runs BM25); default: "
            "OUTPUT/data, prepared here unless it exists.",
            exists=True,
        ),
    ] = None,
    eval_split: Annotated[
        list[str] | None, typer.Option(help="Qrels split of --corpus to report before/after on; repeatable.")
    ] = None,
    max_queries: Annotated[int | None, typer.Option(min=1)] = None,
    rerank: RerankOption = None,
    steps: Annotated[int, typer.Option(min=1)] = 1000,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    lr: float = 5e-5,
    cache_dir: Annotated[Path | None, typer.Option(help="Encodings/index cache (default $LSR_CACHE).")] = None,
    max_minutes: MaxMinutesOption = None,
    resume: ResumeOption = False,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="Train nothing: the before/after report on OUTPUT's latest checkpoint (a run --max-minutes "
            "stopped, when no time is left to finish it).",
        ),
    ] = False,
    device: DeviceOption = "auto",
    seed: int = 0,
) -> None:
    """Label-free domain adaptation: pseudo-queries from the corpus, scored by the teachers, then training; ends
    with the starting and the adapted model on held-out pseudo-queries (and --eval-split qrels)."""
    from lsr.data.beir import BeirDataset
    from lsr.errors import LsrError
    from lsr.train.report import REPORT_FILE, adaptation_report, print_report, targets
    from lsr.train.trainer import TrainConfig, checkpoint_step

    missing = sorted(set(eval_split or []) - set(BeirDataset(corpus).splits()))
    if missing:
        raise LsrError(f"--eval-split: {corpus} has no split {', '.join(map(repr, missing))}")
    if report_only:
        # the checkpoint's own step as the run's length: resuming it trains nothing and writes OUTPUT/model
        steps, resume = checkpoint_step(output), True
        if not steps:
            raise LsrError(f"--report-only: {output} has no checkpoint to report on")
        if data is None and not (output / "data" / "prepare.json").is_file():
            raise LsrError(f"--report-only: {output} holds no prepared data; give the --data the run trained on")
        console.print(f"reporting on the checkpoint at step {steps}; no training")
    if data is None:
        data = output / "data"
        if not (data / "prepare.json").is_file():
            from lsr.train.prepare import prepare  # the teachers' stack (Lucene, dense indexes) only when preparing
            from lsr.train.teachers import parse_teachers

            prepare(
                corpus,
                data,
                parse_teachers(teachers),
                pseudo_per_document=pseudo_queries,
                pseudo_holdout=pseudo_holdout,
                max_queries=max_queries,
                cache_dir=cache_dir,
                seed=seed,
                pseudo_max_share=pseudo_max_share,
                rerank=rerank,
            )
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_minutes=max_minutes)
    folder = _train(model, [data], output, None, True, False, False, resume, device, config)
    if checkpoint_step(output) < steps:  # stopped by --max-minutes: the report waits for the finished model
        return
    console.print(f"adapted model at {folder}")
    comparisons, doc_nnz = adaptation_report(
        model, folder, corpus, targets(data, corpus, eval_split or []), output, device
    )
    print_report(comparisons, doc_nnz, console)
    console.print(f"before/after figures in {output / REPORT_FILE} and {output / 'report'}")
