"""Download of the official BEIR zips, verified against BEIR's published MD5 checksums.

The download streams to a temporary file while hashing, is checked, then
extracted (refusing paths that escape the destination) into a temporary folder
that is renamed into place. Offline, it fails at once with a message saying
where to put the data by hand, instead of hanging.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from lsr.errors import ChecksumError, LsrError, OfflineError
from lsr.fsutil import atomic_dir

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"

# The md5 column of the dataset table in BEIR's README.
BEIR_MD5 = {
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "quora": "18fb154900ba42a600f84b839c173167",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
}

OFFLINE_VARIABLES = ("LSR_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def default_data_dir() -> Path:
    """Where downloads go unless told otherwise: ``$LSR_DATA`` or ``~/.cache/lsr/datasets``."""
    return Path(os.environ.get("LSR_DATA", Path.home() / ".cache" / "lsr" / "datasets"))


def parse_beir_name(spec: str) -> str:
    """``beir/scifact`` (or ``scifact``) to ``scifact``, rejecting names BEIR does not publish."""
    name = spec.removeprefix("beir/")
    if name not in BEIR_MD5:
        raise LsrError(f"unknown BEIR dataset {spec!r}; known: {', '.join(sorted(BEIR_MD5))}")
    return name


def _fetch(url: str, target: Path, timeout: float) -> str:
    """Stream ``url`` to ``target`` with a progress bar; return the MD5 of what was written."""
    digest = hashlib.md5()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - https URL from the table above
    except urllib.error.HTTPError as exc:
        raise LsrError(f"cannot download {url}: the server answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(
            f"cannot download {url}: {reason}. Without network access, download the zip elsewhere and pass "
            "its path (or the extracted folder) to --dataset"
        ) from exc
    with response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {Path(url).name}") as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def _safe_extract(archive: zipfile.ZipFile, dest: Path) -> None:
    root = dest.resolve()
    for member in archive.namelist():
        if not (root / member).resolve().is_relative_to(root):
            raise LsrError(f"refusing to extract {member!r}: it would land outside {dest}")
    archive.extractall(dest)


def download_beir(
    spec: str,
    dest: str | Path | None = None,
    url: str | None = None,
    md5: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download and extract a BEIR dataset; return the dataset folder (``dest/<name>``).

    An existing folder is reused. ``url`` and ``md5`` override the official ones
    (mirrors, tests); the checksum is always verified before anything is extracted.
    """
    name = parse_beir_name(spec)
    dest = Path(dest) if dest is not None else default_data_dir() / "beir"
    final = dest / name
    if (final / "queries.jsonl").is_file():
        return final
    if any(os.environ.get(var, "").lower() in ("1", "true", "yes") for var in OFFLINE_VARIABLES):
        raise OfflineError(f"offline mode is set ({'/'.join(OFFLINE_VARIABLES)}); cannot download beir/{name}")
    expected = md5 or BEIR_MD5[name]
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".zip", dir=dest)
    os.close(fd)
    tmp_zip = Path(tmp_name)
    try:
        actual = _fetch(url or BEIR_URL.format(name=name), tmp_zip, timeout)
        if actual != expected:
            raise ChecksumError(f"beir/{name}: downloaded file has MD5 {actual}, expected {expected}; not extracted")
        with atomic_dir(final) as staging, zipfile.ZipFile(tmp_zip) as archive:
            _safe_extract(archive, staging)
            inner = staging / name
            if inner.is_dir():  # BEIR zips hold one top-level folder named like the dataset
                for child in inner.iterdir():
                    child.rename(staging / child.name)
                inner.rmdir()
    finally:
        tmp_zip.unlink(missing_ok=True)
    return final


def resolve_dataset(spec: str | Path) -> Path:
    """A dataset argument as a path: an existing folder or zip, or ``beir/<name>`` already downloaded."""
    path = Path(spec)
    if path.exists():
        return path
    text = str(spec)
    if text.startswith("beir/"):
        local = default_data_dir() / "beir" / parse_beir_name(text)
        if local.is_dir():
            return local
        raise LsrError(f"{text} is not downloaded yet: run `lsr data download {text}`, or pass a local folder or zip")
    raise LsrError(f"{text}: no such dataset folder or zip")
