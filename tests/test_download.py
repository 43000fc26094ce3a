"""BEIR downloads from a real HTTP server on loopback: checksum, extraction, offline failures."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_beir, zip_folder

from lsr.data.beir import BeirDataset
from lsr.data.download import download_beir, resolve_dataset
from lsr.errors import ChecksumError, LsrError, OfflineError


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on a free loopback port serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _publish(tmp_path: Path, root: Path) -> str:
    archive = zip_folder(make_beir(tmp_path / "src" / "scifact"), root / "scifact.zip")
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_verifies_and_extracts(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    md5 = _publish(tmp_path, root)
    folder = download_beir("beir/scifact", dest=tmp_path / "data", url=f"{url}/scifact.zip", md5=md5)
    assert folder == tmp_path / "data" / "scifact"
    assert len(list(BeirDataset(folder).corpus())) == 5
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["scifact"]  # no zip or temp folder left
    # a second call reuses the folder without the network
    assert download_beir("beir/scifact", dest=tmp_path / "data", url="http://127.0.0.1:9/none.zip") == folder


def test_checksum_mismatch_extracts_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    _publish(tmp_path, root)
    with pytest.raises(ChecksumError, match="expected 5f7d1de60b170fc8027bb7898e2efca1; not extracted"):
        download_beir("scifact", dest=tmp_path / "data", url=f"{url}/scifact.zip")  # official MD5
    assert list((tmp_path / "data").iterdir()) == []


def test_missing_file_on_server(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(LsrError, match="the server answered HTTP 404"):
        download_beir("scifact", dest=tmp_path / "data", url=f"{url}/missing.zip")


def test_unreachable_host_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(OfflineError, match="cannot download .* pass its path"):
        download_beir("nfcorpus", dest=tmp_path / "data", url=f"http://127.0.0.1:{port}/nfcorpus.zip")
    assert time.monotonic() - started < 10


def test_offline_mode_does_not_touch_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline mode is set"):
        download_beir("beir/fiqa", dest=tmp_path)


def test_unknown_name_and_path_traversal(server: tuple[str, Path], tmp_path: Path) -> None:
    with pytest.raises(LsrError, match="unknown BEIR dataset 'beir/nope'"):
        download_beir("beir/nope", dest=tmp_path)
    url, root = server
    with zipfile.ZipFile(root / "scifact.zip", "w") as out:
        out.writestr("../evil.txt", "x")
    md5 = hashlib.md5((root / "scifact.zip").read_bytes()).hexdigest()
    with pytest.raises(LsrError, match="would land outside"):
        download_beir("scifact", dest=tmp_path / "data", url=f"{url}/scifact.zip", md5=md5)
    assert not (tmp_path / "evil.txt").exists()


def test_resolve_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSR_DATA", str(tmp_path))
    with pytest.raises(LsrError, match="run `lsr data download beir/scifact`"):
        resolve_dataset("beir/scifact")
    make_beir(tmp_path / "beir" / "scifact")
    assert resolve_dataset("beir/scifact") == tmp_path / "beir" / "scifact"
    with pytest.raises(LsrError, match="no such dataset"):
        resolve_dataset(tmp_path / "nowhere")
