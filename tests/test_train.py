"""Training: pseudo-queries, teacher-scored examples, the trainer on CPU (all encoder kinds), resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lsr.eval.demo import demo_dataset
from tiny_models import tiny_bert, tiny_mistral
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.beir import BeirDataset, Document
from lsr.errors import DataFormatError
from lsr.models import InferenceFreeEncoder, load_encoder
from lsr.train.data import EXAMPLES_FILE, TrainingSet
from lsr.train.examples import read_examples
from lsr.train.prepare import prepare
from lsr.train.pseudo import pseudo_queries
from lsr.train.student import load_student
from lsr.train.teachers import parse_teachers
from lsr.train.trainer import TrainConfig, Trainer, latest_checkpoint

GUARD = 0.9
KEEP = 6


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus's labelled queries (3 held out) plus 2 pseudo-queries per document, BM25 + MiniLM teachers."""
    root = tmp_path_factory.mktemp("prepared")
    teachers = parse_teachers("bm25,dense@2")
    prepare(
        demo_dataset(),
        root / "data",
        teachers,
        "test",
        holdout=3,
        pseudo_per_document=2,
        depth=20,
        pool=10,
        guard=GUARD,
        keep=KEEP,
        cache_dir=root / "cache",
        seed=1,
    )
    return root / "data"


def test_pseudo_queries_are_titles_and_crops() -> None:
    doc = Document(
        "d", "A title of five words", "Short. " + " ".join(f"w{i}" for i in range(40)) + ". Tail end here ok."
    )
    queries = list(pseudo_queries([doc], per_document=3, min_words=4, max_words=8, seed=3))
    assert [q.qid for q in queries] == ["d#pq0", "d#pq1", "d#pq2"]
    assert queries[0].text == "A title of five words" and all(q.source == "d" for q in queries)
    for query in queries[1:]:
        assert 4 <= len(query.text.split()) <= 8 and query.text in doc.text
    assert queries == list(pseudo_queries([doc], per_document=3, min_words=4, max_words=8, seed=3))


def test_pseudo_queries_of_one_line_documents_leave_words_out_below_a_share() -> None:
    """A one-line document fits max_words whole; with max_share < 1 no query may repeat it word for word."""
    doc = Document("pkg", "pkg", "fast multi-keyword text search engine for Python")  # 8 words, title too short
    (whole,) = pseudo_queries([doc], per_document=1, seed=1)
    assert whole.text == doc.text  # the default keeps a sentence that fits
    for seed in range(20):
        (query,) = pseudo_queries([doc], per_document=1, seed=seed, max_share=0.7)
        words = query.text.split()
        assert 4 <= len(words) <= 5 and query.text in doc.text  # int(8 * 0.7) = 5 words at most, 4 at least
    tiny = Document("t", "", "four words only here")
    (kept,) = pseudo_queries([tiny], per_document=1, max_share=0.5)
    assert kept.text == tiny.text  # never cut below min_words
    with pytest.raises(ValueError, match="max_share"):
        list(pseudo_queries([doc], max_share=0.0))


def test_exact_run_is_the_exact_top_k_of_the_sparse_product() -> None:
    """The evaluation's exact search equals a dense brute force: the same documents, the same scores, no zeros."""
    import scipy.sparse as sp

    from lsr.train.evaluate import exact_run

    docs = sp.random(300, 50, density=0.1, format="csr", random_state=1, dtype=np.float32)
    queries = sp.random(7, 50, density=0.1, format="csr", random_state=2, dtype=np.float32)
    qids, dids = [f"q{i}" for i in range(7)], [f"d{i}" for i in range(300)]
    run = exact_run(queries, docs, qids, dids, k=10, block=3)
    scores = (queries @ docs.T).toarray()
    for i, qid in enumerate(qids):
        best = np.argsort(-scores[i], kind="stable")[:10]
        expected = {dids[j]: scores[i, j] for j in best if scores[i, j] > 0}
        assert run[qid].keys() == expected.keys()
        assert np.allclose([run[qid][d] for d in expected], list(expected.values()), rtol=1e-6)
    assert exact_run(queries, docs[:0], qids, [], k=10) == {qid: {} for qid in qids}


def test_parse_teachers_errors() -> None:
    teachers = parse_teachers("bm25@0.5,dense,sparse=/m")
    assert [(t.retriever, t.weight) for t in teachers] == [("bm25", 0.5), ("dense", 1.0), ("sparse", 1.0)]
    assert parse_teachers("run=/r.trec@0.3")[0].file_name == "run-r.trec"
    for bad in ("bm25=x", "sparse", "run", "cross", "dense@-1", ""):
        with pytest.raises(Exception, match="teacher|no teachers"):
            parse_teachers(bad)


def test_teacher_runs_kept_in_the_folder_rebuild_the_same_examples(prepared: Path, tmp_path: Path) -> None:
    """A prepared folder keeps each teacher's run; reading them back as run teachers gives the same examples, so
    teachers can run on different machines and the ensemble can be re-weighted without running them again."""
    summary = json.loads((prepared / "prepare.json").read_text())
    assert summary["teacher_runs"] == ["teachers/bm25.trec", "teachers/dense-all-minilm-l6-v2.trec"]
    spec = f"run={prepared / summary['teacher_runs'][0]},run={prepared / summary['teacher_runs'][1]}@2"
    again = dict(split="test", holdout=3, pseudo_per_document=2, depth=20, pool=10, guard=GUARD, keep=KEEP, seed=1)
    prepare(demo_dataset(), tmp_path / "again", parse_teachers(spec), cache_dir=tmp_path / "cache", **again)
    original = read_examples(prepared / EXAMPLES_FILE)
    assert read_examples(tmp_path / "again" / EXAMPLES_FILE) == original
    equal = spec.removesuffix("@2")
    prepare(demo_dataset(), tmp_path / "equal", parse_teachers(equal), cache_dir=tmp_path / "c", **again)
    assert [e.scores for e in read_examples(tmp_path / "equal" / EXAMPLES_FILE)] != [e.scores for e in original]
    # a run that misses training queries is refused, naming the file and how many it lacks
    partial = tmp_path / "partial.trec"
    partial.write_text("".join(line for line in (prepared / summary["teacher_runs"][0]).open() if "#pq" not in line))
    with pytest.raises(Exception, match=r"partial\.trec: [\d,]+ of [\d,]+ training queries have no hits"):
        prepare(demo_dataset(), tmp_path / "bad", parse_teachers(f"run={partial}"), cache_dir=tmp_path / "c", **again)
    assert not (tmp_path / "bad").exists()


def test_rerank_scores_the_first_stage_candidates_as_a_full_search_would(prepared: Path, tmp_path: Path) -> None:
    """With --rerank the dense teacher searches nothing: it scores BM25's top documents of each query, each with the
    score its full search gives that document, so a million-document corpus needs no full encoding."""
    from lsr.runs import ranked, read_run

    summary = json.loads((prepared / "prepare.json").read_text())
    bm25_file, dense_file = (prepared / name for name in summary["teacher_runs"])
    again = dict(split="test", holdout=3, pseudo_per_document=2, depth=20, pool=10, guard=GUARD, keep=KEEP, seed=1)
    out = tmp_path / "reranked"
    prepare(
        demo_dataset(), out, parse_teachers(f"run={bm25_file},dense@2"), cache_dir=tmp_path / "c", rerank=5, **again
    )
    assert json.loads((out / "prepare.json").read_text())["rerank"] == 5
    bm25, full, reranked = (
        read_run(bm25_file),
        read_run(dense_file),
        read_run(out / "teachers" / "dense-all-minilm-l6-v2.trec"),
    )
    assert set(reranked) == set(bm25)
    shared = 0
    for qid, hits in reranked.items():
        top = {doc for doc, _ in ranked(bm25[qid])[:5]}  # trec_eval's order, ties included
        assert hits and set(hits) <= top and len(hits) == len(top)
        for doc, score in hits.items():
            if doc in full[qid]:
                shared += 1
                assert score == pytest.approx(full[qid][doc], abs=1e-4)
    assert shared > len(reranked)  # most candidates are also in the full search's top 20: their scores were compared
    with pytest.raises(Exception, match="no first-stage teacher"):
        prepare(demo_dataset(), tmp_path / "bad", parse_teachers("dense"), cache_dir=tmp_path / "c", rerank=5, **again)
    assert not (tmp_path / "bad").exists()


def test_rerank_with_a_sparse_teacher_matches_its_full_search(bert_dir: Path, prepared: Path, tmp_path: Path) -> None:
    """A sparse (SPLADE) teacher reranks too: each candidate gets its sparse dot product, as its search scores it
    (within the index's float16 impacts)."""
    from lsr.runs import read_run

    bm25_file = prepared / "teachers" / "bm25.trec"
    again = dict(split="test", holdout=3, pseudo_per_document=2, depth=20, pool=10, guard=GUARD, keep=KEEP, seed=1)
    teachers = parse_teachers(f"run={bm25_file},sparse={bert_dir}")
    prepare(demo_dataset(), tmp_path / "full", teachers, cache_dir=tmp_path / "c", **again)
    prepare(demo_dataset(), tmp_path / "reranked", teachers, cache_dir=tmp_path / "c", rerank=8, **again)
    full, reranked = (read_run(tmp_path / name / "teachers" / "sparse-model.trec") for name in ("full", "reranked"))
    compared = [
        (score, full[qid][doc]) for qid, hits in reranked.items() for doc, score in hits.items() if doc in full[qid]
    ]
    assert len(compared) > len(reranked)
    assert all(score == pytest.approx(want, rel=1e-2, abs=1e-3) for score, want in compared)


def test_prepared_folder_is_a_dataset_with_guarded_examples(prepared: Path) -> None:
    dataset = BeirDataset(prepared)
    dev_queries, dev_qrels = dataset.split("dev")
    assert len(dev_queries) == 3
    examples = read_examples(prepared / EXAMPLES_FILE)
    assert not {e.qid for e in examples} & set(dev_queries), "held-out queries must not be trained on"
    assert sum("#pq" in e.qid for e in examples) > 40 and sum("#pq" not in e.qid for e in examples) == 9
    for example in examples:
        assert example.scores == sorted(example.scores, reverse=True)
        assert 0.0 <= min(example.scores) and max(example.scores) <= 1.0 + 1e-6
        scores = dict(zip(example.candidates, example.scores, strict=True))
        weakest = min(scores[p] for p in example.positives)
        assert not set(example.negatives) & set(example.positives)
        assert all(scores[n] < GUARD * weakest + 1e-5 for n in example.negatives)
        guarded = [c for c in example.candidates if c not in example.positives and scores[c] >= GUARD * weakest + 1e-5]
        assert not set(guarded) & set(example.negatives)
        assert len(example.negatives) <= KEEP and set(example.positives) <= set(example.candidates)
        if example.negatives:  # candidates stop at the last kept negative (what training can sample)
            tail = [c for c in example.candidates if c not in example.positives][-1]
            assert tail == example.negatives[-1]


def test_bad_examples_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    good = {"qid": "q", "query": "x", "positives": ["d"], "negatives": [], "candidates": ["d"], "scores": [1.0]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "scores": "high"}) + "\n")
    with pytest.raises(DataFormatError, match=r"examples.jsonl:2: field 'scores'"):
        read_examples(path)
    path.write_text(json.dumps({**good, "scores": [1.0, 2.0]}) + "\n")
    with pytest.raises(DataFormatError, match=r":1: fields 'candidates' and 'scores' differ"):
        read_examples(path)


def _config(**overrides: object) -> TrainConfig:
    base = dict(steps=6, batch_size=4, group_size=3, lr=3e-3, idf_lr=1e-2, warmup_steps=0, lambda_warmup=2)
    return TrainConfig(**{**base, **overrides})  # type: ignore[arg-type]


def _fixed_batch_loss(trainer: Trainer, seed: int = 5) -> float:
    trainer.student.eval()
    with torch.no_grad():
        return float(trainer.losses(next(trainer.data.batches(4, seed)))["loss"])


@pytest.mark.parametrize("kind", ["inference-free", "splade"])
def test_training_reduces_loss_and_saves_a_loadable_model(kind: str, bert_dir: Path, prepared: Path, tmp_path: Path):
    torch.manual_seed(0)
    student = load_student(str(bert_dir), kind, [prepared], device="cpu")
    idf_before = student.idf.detach().clone() if kind == "inference-free" else None
    trainer = Trainer(student, TrainingSet([prepared], group_size=3), tmp_path / "run", _config(steps=12, lambda_d=0.0))
    before = _fixed_batch_loss(trainer)
    for _ in range(12):  # the same batch again and again: the loss on it must fall
        trainer.train_step(trainer.data.batches(4, 5))
    assert _fixed_batch_loss(trainer) < 0.8 * before
    out = tmp_path / "saved"
    student.save_pretrained(out)
    loaded = load_encoder(out, device="cpu")
    assert loaded.kind == kind
    texts = ["inverted index postings", "user item embeddings"]
    expected = student.encoder.encode_document(texts)
    assert abs(loaded.encode_document(texts) - expected).max() < 1e-4
    if kind == "inference-free":
        assert isinstance(loaded, InferenceFreeEncoder)
        assert not np.allclose(loaded.idf, idf_before.numpy()), "the IDF table was trained"
        assert abs(loaded.encode_query(texts) - student.encoder.encode_query(texts)).max() < 1e-6


@pytest.mark.parametrize("regularizer", ["flops", "l1"])
def test_regulariser_prunes_documents(regularizer: str, bert_dir: Path, prepared: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = load_student(str(bert_dir), "inference-free", [prepared], device="cpu")
    config = _config(steps=10, regularizer=regularizer)
    trainer = Trainer(student, TrainingSet([prepared], group_size=3), tmp_path / "run", config)
    trainer.config.lambda_d, trainer.config.kl_weight, trainer.config.nce_weight = 1.0, 0.0, 0.0
    trainer.lambda_d.lambda_max, trainer.lambda_d.warmup_steps = 1.0, 0
    before = float(trainer.losses(next(trainer.data.batches(4, 5)))["active_d"])
    batches = trainer.data.batches(4, 5)
    for _ in range(10):
        trainer.train_step(batches)
    after = float(trainer.losses(next(trainer.data.batches(4, 5)))["active_d"])
    assert after < 0.8 * before


def test_resume_continues_from_the_latest_checkpoint(bert_dir: Path, prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = Trainer(
        load_student(str(bert_dir), "inference-free", [prepared], device="cpu"),
        TrainingSet([prepared], group_size=3),
        out,
        _config(steps=4, save_every=2),
    )
    first.train()
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None and checkpoint.name == "step-4"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2", "step-4"]
    second = Trainer(
        load_student(str(checkpoint), None, [prepared], device="cpu"),
        TrainingSet([prepared], group_size=3),
        out,
        _config(steps=6, save_every=2),
    )
    second.load_state(checkpoint)
    assert second.step == 4 and second.scheduler.last_epoch == 4
    second.train()
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 6 and (out / "model" / "idf.json").is_file() and (out / "training.png").stat().st_size > 0


def test_mistral_splade_lora_student_trains(prepared: Path, tmp_path: Path) -> None:
    base = tiny_mistral(tmp_path / "mistral")
    student = load_student(str(base), None, [prepared], lora=True, gradient_checkpointing=True, device="cpu")
    trainable = [p for p in student.backbone_parameters()]
    assert trainable and all("lora" in n for n, p in student.module.named_parameters() if p.requires_grad)
    trainer = Trainer(student, TrainingSet([prepared], group_size=3), tmp_path / "run", _config(steps=3))
    parts = trainer.train_step(trainer.data.batches(4, 0))
    assert np.isfinite(parts["loss"])
    student.save_pretrained(tmp_path / "adapters")
    assert (tmp_path / "adapters" / "adapter_config.json").is_file()


def test_cli_mlm_then_train_with_dev_keeps_the_best(bert_dir: Path, prepared: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    mlm = tmp_path / "mlm"
    result = runner.invoke(
        app,
        [
            "train",
            "mlm",
            "--model",
            str(bert_dir),
            "--corpus",
            str(prepared),
            "--output",
            str(mlm),
            "--steps",
            "4",
            "--batch-size",
            "8",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((mlm / "mlm.json").read_text())["steps"] == 4
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "run",
            "--model",
            str(mlm),
            "--kind",
            "inference-free",
            "--data",
            str(prepared),
            "--output",
            str(out),
            "--dev",
            str(prepared),
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--group-size",
            "2",
            "--eval-every",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [r for r in log if "eval" in r]
    assert [r["step"] for r in evals] == [0, 2, 4]  # the starting model is evaluated, and a candidate
    assert all(0.0 <= r["mean_ndcg10"] <= 1.0 and r["eval"][0]["doc_nnz"] > 0 for r in evals)
    assert load_encoder(out / "model", device="cpu").kind == "inference-free"
    report = tmp_path / "eval.json"
    for extra in ([], ["--max-length", "16"]):
        result = runner.invoke(
            app,
            [
                "train",
                "evaluate",
                "--model",
                str(out / "model"),
                "--dataset",
                f"{prepared}:dev",
                "--output",
                str(report),
                "--device",
                "cpu",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        scores = json.loads(report.read_text())["results"][0]
        if not extra:  # the kept model is the best evaluated one, and it scores the same again
            assert scores["ndcg10"] == pytest.approx(max(r["mean_ndcg10"] for r in evals), abs=1e-6)
            full = scores["doc_nnz"]
    assert scores["doc_nnz"] < full, "16-token documents have fewer terms"


def test_train_keeps_the_starting_model_when_no_step_beats_it(bert_dir: Path, prepared: Path, tmp_path: Path) -> None:
    """At learning rate 0 no step changes the weights, so no dev evaluation beats step 0's: the kept model is the
    start, and the run says so."""
    out = tmp_path / "still"
    args = ["train", "run", "--model", str(bert_dir), "--kind", "inference-free", "--data", str(prepared)]
    args += ["--output", str(out), "--dev", str(prepared), "--steps", "2", "--batch-size", "4", "--group-size", "2"]
    result = CliRunner().invoke(app, [*args, "--eval-every", "1", "--lr", "0", "--idf-lr", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "no step beat the starting model" in " ".join(result.output.split())
    evals = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [r["step"] for r in evals] == [0, 1, 2]
    assert evals[1]["mean_ndcg10"] == evals[2]["mean_ndcg10"] == pytest.approx(evals[0]["mean_ndcg10"], abs=1e-6)


def test_adapt_trains_on_pseudo_queries_of_an_unlabelled_corpus(bert_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "corpus.jsonl").write_text((demo_dataset() / "corpus.jsonl").read_text())
    (corpus / "queries.jsonl").write_text("")  # no queries, no qrels: nothing but the documents
    out = tmp_path / "adapted"
    args = [
        "train",
        "adapt",
        "--corpus",
        str(corpus),
        "--model",
        str(bert_dir),
        "--output",
        str(out),
        "--teachers",
        "bm25",
        "--pseudo-queries",
        "1",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    examples = read_examples(out / "data" / EXAMPLES_FILE)
    assert examples and all("#pq" in e.qid and e.positives == [e.qid.split("#")[0]] for e in examples)
    assert load_encoder(out / "model", device="cpu").kind == "splade"


def test_unknown_regularizer_is_refused(bert_dir: Path, prepared: Path, tmp_path: Path) -> None:
    student = load_student(str(bert_dir), "splade", device="cpu")
    with pytest.raises(Exception, match="unknown regularizer"):
        Trainer(student, TrainingSet([prepared]), tmp_path, _config(regularizer="l2"))
