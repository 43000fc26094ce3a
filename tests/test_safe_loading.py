"""Nothing lsr reads from disk runs code: crafted checkpoints, arrays and model folders are refused, and say so.

Each crafted file carries a pickle whose ``__reduce__`` would create a marker file when unpickled; every test
checks the refusal (a one-line :class:`LsrError`, or exit status 2 with one ``error:`` line from the command)
and that the marker was never created.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import make_beir
from lsr.indexing.dense import build_dense_index, open_dense_index
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from tiny_models import tiny_bert

from lsr.cli import main
from lsr.encode.shards import read_shard
from lsr.errors import LsrError
from lsr.models import load_encoder
from lsr.recommend.data import load_dataset
from lsr.recommend.store import load_model
from lsr.recommend.train import TrainConfig, checkpoint_dir, train
from lsr.train.data import EXAMPLES_FILE, TrainingSet
from lsr.train.examples import Example, write_examples
from lsr.train.student import load_student
from lsr.train.trainer import STATE_FILE, Trainer, latest_checkpoint
from lsr.train.trainer import TrainConfig as EncoderTrainConfig


class Payload:
    """Unpickled, it creates ``marker``: what an attacker's code would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


def _one_error_line(stderr: str, *expected: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert all(text in lines[0] for text in expected), lines[0]
    return lines[0]


# -- encoder training: trainer_state.pt --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


@pytest.fixture(scope="module")
def training_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared training folder written directly (no teachers to run): two queries over conftest's corpus."""
    folder = make_beir(tmp_path_factory.mktemp("prepared") / "data")
    examples = [
        Example("q1", "inverted index postings", ["d1"], ["d2", "d3"], ["d1", "d2", "d3"], [1.0, 0.4, 0.1]),
        Example("q3", "user item embeddings", ["d4"], ["d3", "d2"], ["d4", "d3", "d2"], [1.0, 0.3, 0.2]),
    ]
    write_examples(iter(examples), folder / EXAMPLES_FILE)
    return folder


def _train_args(bert_dir: Path, data: Path, out: Path, steps: int) -> list[str]:
    return [
        *("train", "run", "--model", str(bert_dir), "--kind", "splade", "--data", str(data)),
        *("--output", str(out), "--steps", str(steps), "--batch-size", "2", "--group-size", "2"),
        *("--save-every", "2", "--warmup-steps", "0", "--lambda-warmup", "1", "--device", "cpu"),
    ]


def _run_cli(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    """``lsr ARGS`` in this process, as the console script runs it: its exit status."""
    monkeypatch.setattr(sys, "argv", ["lsr", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


def test_resume_refuses_a_trainer_state_that_runs_code(
    bert_dir: Path,
    training_data: Path,
    tmp_path: Path,
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    assert _run_cli(monkeypatch, _train_args(bert_dir, training_data, out, steps=2)) == 0
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None and checkpoint.name == "step-2"
    assert (checkpoint / "model.safetensors").is_file() and not list(checkpoint.glob("*.bin"))
    # a real state loads weights-only (the resume tests of test_train.py check it continues bit for bit)
    trainer = Trainer(
        load_student(str(checkpoint), None, device="cpu"),
        TrainingSet([training_data], group_size=2),
        out,
        EncoderTrainConfig(steps=4, batch_size=2, group_size=2),
    )
    trainer.load_state(checkpoint)
    assert trainer.step == 2 and trainer.scheduler.last_epoch == 2

    state = torch.load(checkpoint / STATE_FILE, weights_only=True)
    torch.save({**state, "optimizer": Payload(marker)}, checkpoint / STATE_FILE)
    capsys.readouterr()
    assert _run_cli(monkeypatch, [*_train_args(bert_dir, training_data, out, steps=4), "--resume"]) == 2
    assert not marker.exists(), "loading the checkpoint ran the code in it"
    _one_error_line(capsys.readouterr().err, str(checkpoint / STATE_FILE), "refused", "without --resume")
    assert latest_checkpoint(out) == checkpoint, "the refused run must not have trained on"


# -- recommender training: OUT.checkpoint/state.pt, and the model folder's arrays --------------------------------
@pytest.fixture
def recommender_run(tmp_path: Path) -> tuple[Path, Path, TrainConfig]:
    """A recommender run stopped after one of two epochs: its model folder, checkpoint and config."""
    data = tmp_path / "data"
    data.mkdir()
    users = [" ".join(map(str, [u, *((u + i) % 12 for i in range(4))])) for u in range(10)]
    (data / "train.txt").write_text("\n".join(users) + "\n")
    (data / "test.txt").write_text("\n".join(f"{u} {(u + 5) % 12}" for u in range(10)) + "\n")
    config = TrainConfig(model="mf", epochs=2, stop_after=1, batch_size=16, hparams={"dim": 4})
    out = tmp_path / "out"
    train(load_dataset(data), config, out, progress=False)
    return out, data, config


def test_recommender_resume_refuses_a_checkpoint_that_runs_code(
    recommender_run: tuple[Path, Path, TrainConfig], marker: Path
) -> None:
    out, data, config = recommender_run
    saved = checkpoint_dir(out) / "state.pt"
    state = torch.load(saved, weights_only=True)
    torch.save({**state, "log": Payload(marker)}, saved)
    with pytest.raises(LsrError, match="state.pt: refused.*getattr.*without --resume") as error:
        train(load_dataset(data), config, out, progress=False, resume=True)
    assert "\n" not in str(error.value) and not marker.exists()


@pytest.mark.parametrize("file", ["interactions.npz", "model.npz"])
def test_recommender_model_arrays_that_unpickle_are_refused(
    recommender_run: tuple[Path, Path, TrainConfig], marker: Path, file: str
) -> None:
    out = recommender_run[0]
    with np.load(out / file) as stored:
        arrays = {name: stored[name] for name in stored.files}
    np.savez(out / file, **{**arrays, next(iter(arrays)): np.array([Payload(marker)], dtype=object)})
    with pytest.raises(LsrError, match=f"{file}: not a readable array file.*allow_pickle=False"):
        load_model(out)
    assert not marker.exists()


# -- vectors and indexes: .npz shards, .npy arrays -----------------------------------------------------------------
def _poison_npy(path: Path, marker: Path) -> None:
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)


def test_vector_shard_that_unpickles_is_refused(tmp_path: Path, marker: Path) -> None:
    shard = tmp_path / "shard.npz"
    np.savez(shard, ids=np.array([Payload(marker)], dtype=object), embeddings=np.ones((1, 2), np.float32))
    with pytest.raises(LsrError, match="not a readable vector shard"):
        read_shard(shard)
    assert not marker.exists()


def test_sparse_index_array_that_unpickles_is_refused(tmp_path: Path, marker: Path) -> None:
    vectors = sp.csr_matrix(np.array([[0.5, 0, 1.0], [0, 2.0, 0]], dtype=np.float32))
    build_index(lambda: [(["a", "b"], vectors)], tmp_path / "idx", "m", "splade")
    _poison_npy(tmp_path / "idx" / "offsets.npy", marker)
    with pytest.raises(LsrError, match="offsets.npy"):
        SparseIndex.open(tmp_path / "idx", verify=False)  # past the checksums, as a file edited by hand would be
    assert not marker.exists()


def test_exact_dense_index_array_that_unpickles_is_refused(tmp_path: Path, marker: Path) -> None:
    vectors = np.eye(3, dtype=np.float32)
    build_dense_index(lambda: [(["a", "b", "c"], vectors)], tmp_path / "idx", "m", "dot", backend="exact")
    _poison_npy(tmp_path / "idx" / "vectors.npy", marker)
    with pytest.raises(LsrError, match="cannot open the exact index"):
        open_dense_index(tmp_path / "idx", verify=False)
    assert not marker.exists()


# -- model folders: remote code, Hub kernels, pickled weights ----------------------------------------------------
def _set_json(path: Path, **fields: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


REMOTE_CODE = {
    "config.json auto_map": lambda f: _set_json(f / "config.json", auto_map={"AutoModelForMaskedLM": "evil.Model"}),
    "tokenizer auto_map": lambda f: _set_json(
        f / "tokenizer_config.json", auto_map={"AutoTokenizer": ["evil.T", None]}
    ),
    "hub attention kernel": lambda f: _set_json(f / "config.json", attn_implementation="someone/evil-kernel"),
    "sentence-transformers module": lambda f: (f / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "evil.Module"}])
    ),
}


@pytest.mark.parametrize("change", REMOTE_CODE, ids=list(REMOTE_CODE))
def test_model_folder_that_names_its_own_code_is_refused(
    bert_dir: Path, tmp_path: Path, marker: Path, change: str
) -> None:
    folder = Path(shutil.copytree(bert_dir, tmp_path / "model"))
    (folder / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    REMOTE_CODE[change](folder)
    with pytest.raises(LsrError, match=f"{folder}: .*asks to run code shipped with the model"):
        load_encoder(folder, device="cpu")
    with pytest.raises(LsrError, match="asks to run code"):  # training starts from the same folders
        load_student(str(folder), "splade", device="cpu")
    assert not marker.exists()


def test_model_weights_that_unpickle_code_are_refused(bert_dir: Path, tmp_path: Path, marker: Path) -> None:
    folder = Path(shutil.copytree(bert_dir, tmp_path / "model"))
    (folder / "model.safetensors").unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(LsrError, match=f"{folder}: refused.*safetensors"):
        load_encoder(folder, device="cpu")
    assert not marker.exists()
