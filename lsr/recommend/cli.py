"""``lsr recommend``: train a recommender (dense or DSL) and serve top-k items for a user."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lsr.cli_force import writes

app = typer.Typer(help="Recommenders: train (dense or Dynamic Sparse Learning), evaluate, serve.", no_args_is_help=True)
console = Console()


@app.command("train")
@writes("output_dir")
def train_cmd(
    data: Annotated[Path, typer.Option(help="Folder: LightGCN train/test.txt, MovieLens, Last.fm or CSV.")],
    model: Annotated[str, typer.Option(help="mf, neumf, multvae or lightgcn.")],
    output_dir: Annotated[Path, typer.Option(help="Folder to write the model, metrics.json and size.json.")],
    density: Annotated[float, typer.Option(help="Fraction of weights kept; below 1 trains with DSL.")] = 1.0,
    epochs: Annotated[int, typer.Option(help="Training epochs; the test split is evaluated after the last.")] = 20,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    split: Annotated[str, typer.Option(help="given (the files' own), random (per user) or latest.")] = "given",
    fold: Annotated[int, typer.Option(help="MovieLens fold uN.base/uN.test for --split given.")] = 1,
    test_fraction: Annotated[float, typer.Option(help="Share of each user's items held out by --split random.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the initialisation, the masks and the sampling.")] = 0,
    batch_size: Annotated[int | None, typer.Option(help="Default: 2048 triplets, or 500 users for MultVAE.")] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    lr_min: Annotated[
        float | None,
        typer.Option(help="Cosine-anneal the learning rate per epoch from --lr to this (default: constant)."),
    ] = None,
    dim: Annotated[int | None, typer.Option(help="Embedding size (MultVAE: latent size). Default 64 (200).")] = None,
    layers: Annotated[int | None, typer.Option(help="LightGCN propagation layers (default 3).")] = None,
    reg: Annotated[float | None, typer.Option(help="L2 weight on the batch's embeddings (default 1e-4).")] = None,
    update_every: Annotated[int, typer.Option(help="DSL: steps between prune-and-regrow (ΔT).")] = 100,
    prune_fraction: Annotated[float, typer.Option(help="DSL: initial prune fraction, cosine-decayed to 0.")] = 0.5,
    update_until: Annotated[
        float,
        typer.Option(help="DSL: move the mask only in this first fraction of training (RigL stops at 0.75)."),
    ] = 1.0,
    regrow: Annotated[
        str, typer.Option(help="DSL regrowth: gradient, momentum, accumulated (summed over ΔT) or random.")
    ] = "gradient",
    static_mask: Annotated[bool, typer.Option(help="DSL ablation: keep the initial random mask.")] = False,
    pooled_budget: Annotated[
        bool,
        typer.Option(help="DSL: prune and regrow across all weight tensors at once; a tensor's share may move."),
    ] = False,
    sampler: Annotated[
        str | None,
        typer.Option(
            help="Triplets per epoch: 'pairs' (every training pair once) or 'users' (as many uniformly random "
            "users, each with a random positive: LightGCN's code). Default: users for mf and lightgcn, pairs "
            "for neumf; multvae takes batches of users."
        ),
    ] = None,
    eval_every: Annotated[int, typer.Option(help="Also evaluate every K epochs (log.jsonl, recall.png).")] = 0,
    time_limit: Annotated[
        float,
        typer.Option(
            help="Start no new epoch after this many seconds (0: none); metrics.json says how many ran, and "
            "OUTPUT_DIR.checkpoint holds what --resume continues from."
        ),
    ] = 0.0,
    stop_after: Annotated[
        int, typer.Option(help="Train at most this many epochs in this command, then checkpoint (0: no limit).")
    ] = 0,
    checkpoint_every: Annotated[
        int,
        typer.Option(help="Also checkpoint every N epochs, so a killed command loses at most N (0: only on stopping)."),
    ] = 0,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from OUTPUT_DIR.checkpoint (the same settings but --time-limit, --stop-after, "
            "--checkpoint-every, --eval-every), else start afresh; a finished run is left as it is."
        ),
    ] = False,
) -> None:
    """Train on the train split, evaluate by full ranking on the test split, store the model compactly."""
    from lsr.errors import LsrError
    from lsr.recommend.data import SPLITS, load_dataset
    from lsr.recommend.dsl import REGROW
    from lsr.recommend.train import TrainConfig, checkpoint_dir, train

    if regrow not in REGROW:
        raise LsrError(f"--regrow must be one of {', '.join(REGROW)}")
    if split not in SPLITS:
        raise LsrError(f"--split must be one of {', '.join(SPLITS)}")
    if not 0 < density <= 1:
        raise LsrError(f"--density must be in (0, 1], got {density}")
    if lr_min is not None and not 0 <= lr_min <= lr:
        raise LsrError(f"--lr-min must be in [0, --lr = {lr}], got {lr_min}")
    if stop_after < 0 or checkpoint_every < 0:
        raise LsrError("--stop-after and --checkpoint-every count epochs: 0 or more")
    interactions = load_dataset(data, split=split, fold=fold, test_fraction=test_fraction, seed=seed)
    console.print(
        f"{interactions.source}: {interactions.n_users:,} users, {interactions.n_items:,} items, "
        f"{interactions.train.nnz:,} train / {interactions.test.nnz:,} test interactions",
        highlight=False,
    )
    hparams = {k: v for k, v in {"dim": dim, "layers": layers, "reg": reg}.items() if v is not None}
    config = TrainConfig(
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_min=lr_min,
        density=density,
        device=device,
        seed=seed,
        update_every=update_every,
        update_until=update_until,
        prune_fraction=prune_fraction,
        regrow=regrow,
        static_mask=static_mask,
        pooled_budget=pooled_budget,
        sampler=sampler,
        eval_every=eval_every,
        time_limit=time_limit,
        stop_after=stop_after,
        checkpoint_every=checkpoint_every,
        hparams=hparams,
    )
    metrics = train(interactions, config, output_dir, resume=resume, say=lambda m: console.print(m, highlight=False))
    title = f"{model}, density {density:g}, {metrics['epochs']} epochs: test split, {metrics['users']:,} users"
    table = Table(title=title)
    for column in ("k", "recall", "ndcg"):
        table.add_column(column, justify="right")
    for k in (10, 20, 50):
        table.add_row(str(k), f"{metrics[f'recall@{k}']:.4f}", f"{metrics[f'ndcg@{k}']:.4f}")
    console.print(table)
    console.print(
        f"{metrics['train_seconds_per_epoch']:.2f} s/epoch, {metrics['inference_ms_per_user']:.3f} ms/user; "
        f"model in {output_dir}",
        highlight=False,
    )
    if metrics["epochs"] < metrics["planned_epochs"]:
        console.print(
            f"stopped after {metrics['epochs']} of {metrics['planned_epochs']} epochs: "
            f"run the same command with --resume to continue from {checkpoint_dir(output_dir)}",
            highlight=False,
        )


@app.command("user")
def user_cmd(
    user: Annotated[str, typer.Argument(help="User id as in the training data.")],
    model: Annotated[Path, typer.Option(help="Folder written by lsr recommend train.")],
    k: Annotated[int, typer.Option(help="Number of items.")] = 10,
    exact: Annotated[bool, typer.Option(help="Score every item instead of searching the HNSW index.")] = False,
    titles: Annotated[
        Path | None,
        typer.Option(help="Item names file (MovieLens u.item, movies.dat, movies.csv); default: beside the data."),
    ] = None,
) -> None:
    """Top-k items the user has not interacted with, from the HNSW index of item embeddings (MF, LightGCN), with
    their names when the training data has them (MovieLens)."""
    from lsr.data.titles import item_file, ranked_table, source_folder
    from lsr.data.titles import titles as read_titles
    from lsr.recommend.serve import Server

    server = Server(model)
    items = server.recommend(user, k, exact=exact)
    folder = source_folder(str(server.config.get("data", "")))
    names_file = titles or (item_file(folder) if folder is not None else None)
    names = read_titles(names_file, [item for item, _ in items]) if names_file is not None else {}
    console.print(ranked_table(f"user {user}: top {len(items)} ({server.method(exact)})", items, "item", names))


def main() -> None:
    """``python -m lsr.recommend``: the same commands without the rest of lsr (for bare GPU machines)."""
    import sys

    from lsr.errors import LsrError, print_problem

    try:
        app()
    except LsrError as exc:
        print_problem("error", "red", exc)
        sys.exit(2)
