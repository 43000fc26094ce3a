"""Encode a corpus on a Ray cluster into the same vector shards the single-process encoder writes.

Ray does the distribution (scheduling, a worker per CPU or GPU, retrying the blocks of a worker that
died); this module only cuts the corpus into shard-sized blocks, sends each to a Ray task and writes
what comes back, in corpus order, with the shard writer and manifest of :mod:`lsr.encode.shards`.
The driver alone writes files, so the workers need no shared file system, and the folder is the one
``lsr encode`` would write: ``lsr index --vectors`` takes it unchanged and an interrupted run resumes
(with or without Ray) after the last recorded shard.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from lsr.data.beir import read_corpus
from lsr.data.textio import TextSource
from lsr.encode.corpus import _blocks, document_text, encode_texts, open_output
from lsr.encode.shards import Manifest, write_shard
from lsr.errors import LsrError

#: Fault injection for tests: a worker that finds this variable naming a file that does not exist yet
#: creates the file and dies, as a crashed machine would, so that Ray's retry of its block is exercised.
CRASH_ONCE_ENV = "LSR_RAY_CRASH_ONCE"

_ENCODERS: dict[tuple[str, str, str, int | None], Any] = {}  # per worker process: load each model once


def _encoder(model: str, device: str, dtype: str, max_length: int | None) -> Any:
    key = (model, device, dtype, max_length)
    if key not in _ENCODERS:
        from lsr.models import load_encoder

        kwargs = {"max_length": max_length} if max_length else {}
        _ENCODERS[key] = load_encoder(model, device=device, dtype=dtype, **kwargs)
    return _ENCODERS[key]


def _describe(model: str, device: str, dtype: str, max_length: int | None) -> tuple[str, bool, int]:
    """Kind, density and dimension of the model, asked of a worker so the driver needs neither the
    model's weights nor an accelerator."""
    from lsr.models import DenseEncoder

    encoder = _encoder(model, device, dtype, max_length)
    dense = isinstance(encoder, DenseEncoder)
    return encoder.kind, dense, encoder.dimension if dense else len(encoder.vocabulary)


def _encode_block(
    model: str, device: str, dtype: str, max_length: int | None, ids: list[str], texts: list[str], batch_size: int
) -> tuple[list[str], sp.csr_matrix | np.ndarray]:
    """One shard's worth of documents, encoded on whichever worker Ray chose; the ids travel back with the
    vectors so the driver can check that each block came back whole and once."""
    flag = os.environ.get(CRASH_ONCE_ENV)
    if flag and not Path(flag).exists():
        Path(flag).touch()
        os._exit(1)  # a hard crash, not an exception: Ray must notice the lost worker and rerun the task
    encoder = _encoder(model, device, dtype, max_length)
    return ids, encode_texts(encoder, texts, batch_size)


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to; ``local``: start a
    throwaway one on this machine); an already initialised Ray (e.g. a test's cluster) is used as it is."""
    try:
        import ray
    except ImportError as exc:
        raise LsrError("--ray needs Ray: pip install 'lsr[scale]' (or 'ray[data]')") from exc
    if ray.is_initialized():
        return
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise LsrError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from exc


def _wants_gpu(device: str) -> bool:
    import ray

    if device == "cuda":
        return True
    return device == "auto" and ray.cluster_resources().get("GPU", 0) > 0


def encode_corpus_ray(
    model_name: str,
    src: TextSource,
    output: str | Path,
    address: str = "auto",
    shard_size: int = 10_000,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str = "auto",
    max_length: int | None = None,
    max_retries: int = 3,
    task_options: dict[str, Any] | None = None,
) -> Manifest:
    """Encode ``src`` into ``output`` on the Ray cluster at ``address``, one task per shard.

    Each task takes one GPU where the cluster has GPUs (and ``device`` allows), otherwise one CPU, so
    every worker encodes. A task whose worker dies, or that raises, is rerun up to ``max_retries``
    times; the driver writes shards strictly in corpus order and checks that each holds exactly the
    ids it sent, so the folder holds every document exactly once. At most two tasks per worker are in
    flight, which bounds the driver's memory on any corpus size. ``task_options`` are passed to
    Ray's ``.options()`` (e.g. a ``runtime_env``)."""
    import ray

    connect(address)
    gpu = _wants_gpu(device)
    resources: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": 1}
    worker_device = device if device != "auto" else ("cuda" if gpu else "cpu")
    options = {**resources, **(task_options or {})}
    describe = ray.remote(_describe).options(**options, max_retries=max_retries, retry_exceptions=False)
    encode = ray.remote(_encode_block).options(**options, max_retries=max_retries, retry_exceptions=True)

    model_args = (model_name, worker_device, dtype, max_length)
    kind, dense, dimension = ray.get(describe.remote(*model_args))
    manifest = open_output(output, model_name, kind, dense, dimension, shard_size, src)
    output = Path(output)
    if manifest.complete:
        return manifest
    done = len(manifest.shards)
    docs = read_corpus(src)
    for _ in islice(docs, done * shard_size):  # already encoded by an earlier run: read (and validated) only
        pass
    workers = int(ray.cluster_resources().get("GPU" if gpu else "CPU", 1)) or 1
    blocks: Iterator[tuple[int, list[Any]]] = enumerate(_blocks(docs, shard_size), start=done)
    pending: deque[tuple[int, list[str], Any]] = deque()
    with tqdm(initial=done * shard_size, desc=f"encode {src.path.name} on Ray", unit=" docs") as bar:
        while True:
            while len(pending) < 2 * workers and (item := next(blocks, None)) is not None:
                number, block = item
                ids = [d.id for d in block]
                ref = encode.remote(*model_args, ids, [document_text(d) for d in block], batch_size)
                pending.append((number, ids, ref))
            if not pending:
                break
            number, ids, ref = pending.popleft()
            try:
                got_ids, vectors = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise LsrError(f"shard {number} failed after {max_retries} retries: {exc}") from exc
            if list(got_ids) != ids or vectors.shape[0] != len(ids):
                raise LsrError(f"shard {number}: a worker returned other documents than it was sent")
            manifest.shards.append(write_shard(output, number, ids, vectors))
            manifest.save(output)
            bar.update(len(ids))
    manifest.complete = True
    manifest.save(output)
    return manifest
