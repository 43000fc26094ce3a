"""Training, compact storage, serving and the ``lsr recommend`` commands on a tiny generated dataset."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError
from lsr.fsutil import MARKER
from lsr.recommend.data import Interactions, load_dataset
from lsr.recommend.models import MODELS
from lsr.recommend.samplers import TripletSampler, UserSampler, UserTripletSampler
from lsr.recommend.serve import Server
from lsr.recommend.store import load_model
from lsr.recommend.train import TrainConfig, build, checkpoint_dir, lr_at, train


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: extra threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_clusters(folder: Path, seed: int = 0) -> Path:
    """Two taste clusters (users 0–19 like items 0–14, users 20–39 items 15–29), LightGCN layout."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for user in range(40):
        own = rng.permutation(15) + (0 if user < 20 else 15)
        train.append(" ".join(map(str, [user, *own[:8]])))
        test.append(" ".join(map(str, [user, *own[8:10]])))
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return folder


@pytest.fixture
def clusters(tmp_path: Path) -> Interactions:
    return load_dataset(make_clusters(tmp_path / "data"))


def test_negatives_are_never_training_items(clusters: Interactions) -> None:
    sampler = TripletSampler(clusters.train, 64, torch.device("cpu"), torch.Generator().manual_seed(0))
    users, positives, negatives = (torch.cat(parts) for parts in zip(*sampler, strict=True))
    dense = torch.from_numpy(clusters.train.toarray()).bool()
    assert len(users) == clusters.train.nnz and dense[users, positives].all() and not dense[users, negatives].any()


def test_user_sampler_weights_users_equally_not_by_activity() -> None:
    """LightGCN's sampling: user u (among those with items) is drawn 1/|users| of the time, whatever its degree."""
    degrees = [1, 2, 5, 10, 40, 0, 3]  # user 5 has no training items: never drawn
    rows = np.repeat(np.arange(len(degrees)), degrees)
    cols = np.concatenate([np.arange(d) * 7 % 50 for d in degrees])
    train_matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(degrees), 50))
    sampler = UserTripletSampler(train_matrix, 16, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert len(sampler) == math.ceil(train_matrix.nnz / 16)
    epochs = [[torch.cat(parts) for parts in zip(*sampler, strict=True)] for _ in range(400)]
    assert all(len(users) == train_matrix.nnz for users, _, _ in epochs)  # an epoch draws as many as pairs
    users, positives, negatives = (torch.cat(parts) for parts in zip(*epochs, strict=True))
    dense = torch.from_numpy(train_matrix.toarray()).bool()
    assert dense[users, positives].all() and not dense[users, negatives].any()
    share = torch.bincount(users, minlength=len(degrees)).double() / len(users)
    assert share[5] == 0 and torch.allclose(share[[0, 1, 2, 3, 4, 6]], torch.full((6,), 1 / 6).double(), atol=0.01)
    heavy = torch.bincount(positives[users == 4], minlength=50).double()  # the 40 positives of user 4: uniform
    heavy = heavy[heavy > 0] / heavy.sum()
    assert len(heavy) == 40 and torch.allclose(heavy, torch.full((40,), 1 / 40).double(), atol=0.01)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("density", [1.0, 0.5])
def test_a_few_cpu_steps_reduce_the_loss(clusters: Interactions, name: str, density: float) -> None:
    torch.manual_seed(0)
    config = TrainConfig(model=name, lr=0.01, batch_size=64, hparams={"dim": 16})
    model = build(clusters, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    sampler_gen = torch.Generator().manual_seed(0)
    fixed = next(iter(TripletSampler(clusters.train, 320, torch.device("cpu"), sampler_gen)))
    batch = fixed if model.sampler == "triplets" else (torch.arange(40),)
    masks = None
    if density < 1:
        from lsr.recommend.dsl import SparseMasks

        masks = SparseMasks(model, optimizer, density, total_steps=30, update_every=10)
    model.eval()  # MultVAE: no dropout or sampling noise, so the losses compare
    with torch.no_grad():
        before = float(model.loss(batch))
    for _ in range(30):
        model.train()
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
        if masks:
            masks.step()
    model.eval()
    with torch.no_grad():
        after = float(model.loss(batch))
    assert after < 0.9 * before, (before, after)


@pytest.mark.parametrize(("name", "density"), [("lightgcn", 0.2), ("mf", 1.0), ("neumf", 0.5), ("multvae", 0.3)])
def test_train_store_load_predict_the_same(clusters: Interactions, tmp_path: Path, name: str, density: float) -> None:
    config = TrainConfig(model=name, epochs=3, density=density, lr=0.01, update_every=2, hparams={"dim": 16})
    metrics = train(clusters, config, tmp_path / "out", progress=False)
    assert {"recall@10", "recall@20", "recall@50", "ndcg@10", "ndcg@20", "ndcg@50"} <= set(metrics)
    size = json.loads((tmp_path / "out" / "size.json").read_text())
    if density < 1:
        assert size["stored_parameters"] < (density + 0.02) * size["dense_parameters"]
    else:
        assert size["stored_parameters"] == size["dense_parameters"]
    model, _ = load_model(tmp_path / "out")
    with torch.no_grad():
        scores = model.score(torch.arange(clusters.n_users))
    # a second load gives the same scores, and they are the scores that metrics.json was computed from
    again, _ = load_model(tmp_path / "out")
    with torch.no_grad():
        assert torch.equal(scores, again.score(torch.arange(clusters.n_users)))
    from lsr.recommend.metrics import evaluate

    reloaded = evaluate(model.scorer(), clusters.train, clusters.test)
    assert reloaded["recall@20"] == pytest.approx(metrics["recall@20"], abs=1e-6)
    assert reloaded["ndcg@20"] == pytest.approx(metrics["ndcg@20"], abs=1e-6)


def test_sparse_store_holds_only_the_budget(clusters: Interactions, tmp_path: Path) -> None:
    config = TrainConfig(model="mf", epochs=2, density=0.25, update_every=1, hparams={"dim": 64})
    train(clusters, config, tmp_path / "out", progress=False)
    size = json.loads((tmp_path / "out" / "size.json").read_text())
    tables = (clusters.n_users + clusters.n_items) * 64
    assert size["dense_parameters"] == tables and size["stored_parameters"] == round(0.25 * 40 * 64) + round(
        0.25 * 30 * 64
    )
    with np.load(tmp_path / "out" / "model.npz") as arrays:
        assert arrays["user_embedding.weight/indices"].dtype == np.uint8  # 64 columns fit a byte
    assert size["bytes"] < 0.5 * size["dense_float32_bytes"]  # 5 bytes per weight + row pointers + npz headers


def test_cli_train_and_user(tmp_path: Path) -> None:
    data = make_clusters(tmp_path / "data")
    out = tmp_path / "model"
    args = ["recommend", "train", "--data", str(data), "--model", "lightgcn", "--density", "0.5", "--epochs", "30"]
    result = CliRunner().invoke(app, [*args, "--lr", "0.02", "--batch-size", "64", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    size = json.loads((out / "size.json").read_text())
    assert metrics["recall@20"] > 0.9 and 0 < metrics["ndcg@20"] <= 1  # the clusters are easy
    assert size["stored_parameters"] <= 0.5 * size["dense_parameters"] + 1 and size["bytes"] > 0
    assert len((out / "log.jsonl").read_text().splitlines()) == 30

    shown = CliRunner().invoke(app, ["recommend", "user", "3", "--model", str(out), "--k", "5"])
    assert shown.exit_code == 0, shown.output
    assert (out / "items.hnsw").is_file()
    server = Server(out)
    seen = set(np.array(server.items)[server.train[3].indices].tolist())
    approx, exact = server.recommend("3", 5), server.recommend("3", 5, exact=True)
    assert [i for i, _ in approx] == [i for i, _ in exact]  # 30 items: HNSW is exact here
    assert not seen & {i for i, _ in approx} and all(int(i) < 15 for i, _ in approx)  # user 3's cluster
    assert all(a[1] >= b[1] for a, b in zip(approx, approx[1:], strict=False))

    missing = CliRunner().invoke(app, ["recommend", "user", "nobody", "--model", str(out)])
    assert missing.exit_code != 0 and "unknown user" in str(missing.exception)


def test_exhaustive_serving_for_non_dot_product_models(clusters: Interactions, tmp_path: Path) -> None:
    train(clusters, TrainConfig(model="multvae", epochs=2, hparams={"dim": 8}), tmp_path / "vae", progress=False)
    server = Server(tmp_path / "vae")
    items = server.recommend("25", 4)
    assert server.method() == "exhaustive scoring" and len(items) == 4
    assert not set(np.array(server.items)[server.train[25].indices].tolist()) & {i for i, _ in items}


def test_movielens_trains_end_to_end(shared: Path, tmp_path: Path) -> None:
    data = load_dataset(shared / "data" / "recsys" / "ml-100k")
    metrics = train(data, TrainConfig(model="mf", epochs=2, lr=0.005), tmp_path / "ml", progress=False)
    assert metrics["users"] == 459 and metrics["recall@20"] > 0.05  # popularity-level after two epochs


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    data = make_clusters(tmp_path / "data")
    base = ["recommend", "train", "--data", str(data), "--output-dir", str(tmp_path / "o")]
    for extra, message in [
        (["--model", "mf", "--layers", "2"], "mf has no hyper-parameter layers"),
        (["--model", "svd"], "unknown model 'svd'"),
        (["--model", "mf", "--density", "0"], "--density must be in (0, 1]"),
        (["--model", "mf", "--lr", "0.01", "--lr-min", "0.1"], "--lr-min must be in [0, --lr = 0.01]"),
        (["--model", "mf", "--split", "latest"], "timestamps"),
    ]:
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code != 0 and message in str(result.exception), (extra, result.output)
    assert not (tmp_path / "o").exists()


# Resumable training: a run stopped early and continued with resume=True must be the uninterrupted run.

TIMINGS = {"seconds", "train_seconds_per_epoch", "inference_ms_per_user"}


def _small(name: str, **changes: object) -> TrainConfig:
    settings = {"model": name, "epochs": 6, "density": 0.5, "lr": 0.01, "batch_size": 64, "update_every": 2}
    return TrainConfig(**{**settings, "eval_every": 2, "hparams": {"dim": 8}, **changes})


def _outcome(folder: Path) -> tuple[dict[str, np.ndarray], dict, list[dict]]:
    """Weights and masks (the stored CSR structure), metrics and log of a model folder, timings left out."""
    with np.load(folder / "model.npz") as arrays:
        weights = {name: arrays[name] for name in arrays.files}
    metrics = {k: v for k, v in json.loads((folder / "metrics.json").read_text()).items() if k not in TIMINGS}
    log = [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in (folder / "log.jsonl").open()]
    return weights, metrics, log


def _assert_same_run(a: Path, b: Path) -> None:
    (weights_a, metrics_a, log_a), (weights_b, metrics_b, log_b) = _outcome(a), _outcome(b)
    assert weights_a.keys() == weights_b.keys()
    assert all(np.array_equal(weights_a[name], weights_b[name]) for name in weights_a)
    assert metrics_a == metrics_b and log_a == log_b
    model_a, _ = load_model(a)
    model_b, _ = load_model(b)
    state_b = model_b.state_dict()
    assert all(torch.equal(tensor, state_b[name]) for name, tensor in model_a.state_dict().items())


@pytest.mark.parametrize(
    ("name", "regrow", "sampler", "lr_min"),
    [
        ("mf", "momentum", None, None),
        ("lightgcn", "accumulated", "pairs", 1e-4),  # the lr schedule and the regrowth sums go on where they stopped
        ("neumf", "random", "users", None),
        ("multvae", "random", None, None),
    ],
)
def test_stopped_and_resumed_run_is_the_uninterrupted_run(
    clusters: Interactions, tmp_path: Path, name: str, regrow: str, sampler: str | None, lr_min: float | None
) -> None:
    def config(**changes: object) -> TrainConfig:
        return _small(name, regrow=regrow, sampler=sampler, lr_min=lr_min, **changes)

    whole = train(clusters, config(), tmp_path / "whole", progress=False)
    out = tmp_path / "parts"
    partial = train(clusters, config(stop_after=2), out, progress=False, resume=True)
    assert (partial["epochs"], partial["planned_epochs"]) == (2, 6)
    assert (out / "model.npz").is_file() and checkpoint_dir(out).is_dir()  # the partial model, and how to go on
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    train(clusters, config(stop_after=3), out, progress=False, resume=True)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 5
    said: list[str] = []
    resumed = train(clusters, config(), out, progress=False, resume=True, say=said.append)
    assert said == [f"resuming from {checkpoint_dir(out)} after epoch 5 of 6"]
    assert resumed["epochs"] == 6 and not checkpoint_dir(out).exists()
    assert {k: v for k, v in resumed.items() if k not in TIMINGS} == {
        k: v for k, v in whole.items() if k not in TIMINGS
    }
    _assert_same_run(tmp_path / "whole", out)


def test_cosine_learning_rate_runs_from_lr_to_lr_min(clusters: Interactions, tmp_path: Path) -> None:
    config = _small("mf", density=1.0, lr=0.01, lr_min=1e-4, epochs=4)
    assert [lr_at(config, e) for e in (1, 3, 5)] == pytest.approx([0.01, (0.01 + 1e-4) / 2, 1e-4])  # 5: the end
    rates = [lr_at(config, e) for e in range(1, 5)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    train(clusters, config, tmp_path / "m", progress=False)
    logged = [json.loads(line)["lr"] for line in (tmp_path / "m" / "log.jsonl").open()]
    assert logged == rates
    assert lr_at(replace(config, lr_min=None), 4) == 0.01


def test_resume_refuses_a_different_run(clusters: Interactions, tmp_path: Path) -> None:
    out = tmp_path / "out"
    train(clusters, _small("mf", stop_after=1), out, progress=False)
    for changes, named in [
        ({"lr": 0.02}, "lr: 0.01 there, 0.02 now"),
        ({"density": 0.2}, "density"),
        ({"model": "lightgcn"}, "model: 'mf' there, 'lightgcn' now"),
        ({"epochs": 10}, "epochs"),  # the DSL schedule spans the planned epochs: more is another run
        ({"hparams": {"dim": 16}}, "hparams"),
        ({"sampler": "pairs"}, "sampler: 'users' there, 'pairs' now"),  # MF's default is LightGCN's sampling
        ({"pooled_budget": True}, "pooled_budget: False there, True now"),
    ]:
        with pytest.raises(LsrError, match="holds a different run") as error:
            train(clusters, _small("mf", **changes), out, progress=False, resume=True)
        assert named in str(error.value) and str(checkpoint_dir(out)) in str(error.value)
    other = load_dataset(make_clusters(tmp_path / "other", seed=1))
    with pytest.raises(LsrError, match="other training data"):
        train(other, _small("mf"), out, progress=False, resume=True)
    # what steers one command may change
    metrics = train(clusters, _small("mf", eval_every=0, time_limit=1e6), out, progress=False, resume=True)
    assert metrics["epochs"] == 6
    with pytest.raises(LsrError, match="lr"):  # a finished run of another config is not overwritten either
        train(clusters, _small("mf", lr=0.02), out, progress=False, resume=True)


def test_checkpoints_from_before_the_sampler_option_resume_as_pairs(clusters: Interactions, tmp_path: Path) -> None:
    out = tmp_path / "out"
    train(clusters, _small("mf", sampler="pairs", stop_after=1), out, progress=False)
    saved = checkpoint_dir(out) / "state.pt"
    state = torch.load(saved, weights_only=True)
    del state["config"]["sampler"]  # as written before the option: those runs drew every pair once per epoch
    del state["config"]["pooled_budget"]  # a setting added later resumes as its default
    torch.save(state, saved)
    with pytest.raises(LsrError, match="sampler: 'pairs' there, 'users' now"):
        train(clusters, _small("mf"), out, progress=False, resume=True)
    assert train(clusters, _small("mf", sampler="pairs"), out, progress=False, resume=True)["epochs"] == 6


def test_sampler_is_checked_and_recorded(clusters: Interactions, tmp_path: Path) -> None:
    with pytest.raises(LsrError, match="batches of users"):
        train(clusters, _small("multvae", sampler="users"), tmp_path / "vae", progress=False)
    with pytest.raises(LsrError, match="pairs, users"):
        train(clusters, _small("mf", sampler="items"), tmp_path / "mf", progress=False)
    for name, expected in [("mf", "users"), ("lightgcn", "users"), ("neumf", "pairs"), ("multvae", None)]:
        train(clusters, _small(name, epochs=1, eval_every=0, density=1.0), tmp_path / name, progress=False)
        assert json.loads((tmp_path / name / "config.json").read_text())["train"]["sampler"] == expected


def test_checkpoints_are_atomic_and_removed_when_training_ends(
    clusters: Interactions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    saves = 0
    real_save = torch.save

    def save_once_then_die(*args: object, **kwargs: object) -> None:
        nonlocal saves
        saves += 1
        if saves > 1:
            raise KeyboardInterrupt  # the command is killed while writing its second checkpoint
        real_save(*args, **kwargs)

    monkeypatch.setattr(torch, "save", save_once_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(clusters, _small("mf", checkpoint_every=1), out, progress=False)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out.checkpoint"]  # no temporary folder left
    assert sorted(p.name for p in checkpoint_dir(out).iterdir()) == [MARKER, "state.pt"]
    said: list[str] = []
    train(clusters, _small("mf", checkpoint_every=1), out, progress=False, resume=True, say=said.append)
    assert said == [f"resuming from {checkpoint_dir(out)} after epoch 1 of 6"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]
    train(clusters, _small("mf"), tmp_path / "whole", progress=False)
    _assert_same_run(tmp_path / "whole", out)

    said.clear()
    again = train(clusters, _small("mf"), out, progress=False, resume=True, say=said.append)
    assert again["epochs"] == 6 and said == [f"{out} already holds all 6 epochs of this run: nothing to train"]
    fresh = tmp_path / "fresh"
    train(clusters, _small("mf", epochs=1), fresh, progress=False, resume=True, say=said.append)
    assert said[-1] == f"no checkpoint at {checkpoint_dir(fresh)}: training from the first epoch"


def test_cli_resume_continues_where_the_last_command_stopped(tmp_path: Path) -> None:
    data = make_clusters(tmp_path / "data")
    base = ["recommend", "train", "--data", str(data), "--model", "lightgcn", "--density", "0.5", "--epochs", "4"]
    base += ["--lr", "0.02", "--batch-size", "64", "--dim", "8", "--update-every", "2"]
    out = tmp_path / "parts"
    stopped = CliRunner().invoke(app, [*base, "--output-dir", str(out), "--stop-after", "3", "--resume"])
    assert stopped.exit_code == 0, stopped.output
    assert "no checkpoint" in stopped.output and "stopped after 3 of 4 epochs" in stopped.output
    resumed = CliRunner().invoke(app, [*base, "--output-dir", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "after epoch 3 of 4" in resumed.output and "stopped" not in resumed.output
    assert not checkpoint_dir(out).exists()
    whole = CliRunner().invoke(app, [*base, "--output-dir", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    _assert_same_run(tmp_path / "whole", out)
    changed = CliRunner().invoke(app, [*base, "--output-dir", str(out), "--resume", "--lr", "0.05"])
    assert changed.exit_code != 0 and "lr: 0.02 there, 0.05 now" in str(changed.exception)


def test_a_dsl_run_too_short_for_one_mask_update_is_refused(clusters: Interactions, tmp_path: Path) -> None:
    steps = len(UserSampler(clusters.train, 500, torch.device("cpu"), torch.Generator()))
    short = TrainConfig(model="multvae", epochs=2, density=0.5, update_every=2 * steps)
    with pytest.raises(LsrError, match=f"no mask update in the {2 * steps} steps it may move"):
        train(clusters, short, tmp_path / "short", progress=False)
    static = train(clusters, replace(short, static_mask=True), tmp_path / "static", progress=False)
    assert static["epochs"] == 2  # a fixed mask, asked for, trains


@pytest.mark.parametrize(("until", "moves_late"), [(0.5, False), (1.0, True)])
def test_update_until_freezes_the_mask_for_the_rest_of_training(
    clusters: Interactions, tmp_path: Path, until: float, moves_late: bool
) -> None:
    """The mask moves in the first ``until`` of the planned steps only (RigL's end), however the run is split."""
    out, saved = tmp_path / "out", []
    for epochs in (1, 2, 2):  # stop after epochs 1, 3 and 5 of 6
        config = _small("lightgcn", update_until=until, update_every=1, stop_after=epochs)
        train(clusters, config, out, progress=False, resume=True)
        saved.append(torch.load(checkpoint_dir(out) / "state.pt", weights_only=False)["masks"]["masks"])
    first, middle, late = saved
    assert any(not torch.equal(first[n], middle[n]) for n in first)  # it moves in the first half either way
    assert any(not torch.equal(middle[n], late[n]) for n in middle) == moves_late
    assert {n: int(m.sum()) for n, m in late.items()} == {n: int(m.sum()) for n, m in first.items()}


def test_update_until_must_be_a_fraction_of_training(clusters: Interactions, tmp_path: Path) -> None:
    with pytest.raises(LsrError, match="--update-until must be in \\(0, 1\\], got 1.5"):
        train(clusters, _small("mf", update_until=1.5), tmp_path / "out", progress=False)
