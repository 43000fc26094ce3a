"""Bearer tokens, TLS with a self-signed certificate made in the test, and warnings about exposed servers."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from pathlib import Path

import grpc
import pytest
from lsr.serve.auth import exposure_warnings, is_loopback
from lsr.serve.client import Client
from serve_support import Artifacts, running


@pytest.fixture(scope="module")
def artifacts(serve_artifacts: Artifacts) -> Artifacts:
    return serve_artifacts


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, signed by its own key (PEM files)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def status(call) -> grpc.StatusCode | None:  # noqa: ANN001
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return None


def test_a_token_is_required_on_every_call_but_health(artifacts: Artifacts) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with running(artifacts, dense=False, token="s3cret-token") as server:
        address = server.address
        for token in (None, "wrong", "s3cret-token-but-longer"):
            with Client(address, token=token) as client:
                assert status(lambda c=client: c.search("inverted index")) == grpc.StatusCode.UNAUTHENTICATED
                assert status(lambda c=client: c.stats()) == grpc.StatusCode.UNAUTHENTICATED
                assert status(lambda c=client: c.recommend("3")) == grpc.StatusCode.UNAUTHENTICATED
        with Client(address, token="s3cret-token") as client:
            assert len(client.search("inverted index", k=3)) == 3 and client.recommend("3", k=2)
        with grpc.insecure_channel(address) as channel:  # probes need no secret
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_tls_with_a_self_signed_certificate(artifacts: Artifacts, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with running(artifacts, dense=False, recommender=False, tls_cert=cert, tls_key=key, token="t0k") as server:
        address = f"localhost:{server.port}"
        with Client(address, token="t0k", tls_ca=cert) as client:
            assert len(client.search("inverted index", k=3)) == 3
        with Client(address, token="nope", tls_ca=cert) as client:
            assert status(lambda: client.search("inverted index")) == grpc.StatusCode.UNAUTHENTICATED
        with Client(address, token="t0k", timeout=3) as plaintext:  # a plaintext client cannot talk to it
            assert status(lambda: plaintext.search("inverted index")) == grpc.StatusCode.UNAVAILABLE
        (tmp_path / "other").mkdir()
        other, _ = self_signed(tmp_path / "other")  # a certificate the client trusts but the server does not hold
        with Client(address, token="t0k", tls_ca=other, timeout=3) as untrusting:
            assert status(lambda: untrusting.search("inverted index")) == grpc.StatusCode.UNAVAILABLE


def test_tls_needs_both_files(artifacts: Artifacts, tmp_path: Path) -> None:
    from lsr.errors import LsrError

    cert, _ = self_signed(tmp_path)
    with pytest.raises(LsrError, match="both --tls-cert and --tls-key"):
        with running(artifacts, dense=False, recommender=False, tls_cert=cert):
            pass


def test_exposure_warnings() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.1.2.3", "example.org"))
    assert exposure_warnings("127.0.0.1", tls=False, token=False) == []
    both = exposure_warnings("0.0.0.0", tls=False, token=False)
    assert len(both) == 2 and "without TLS" in both[0] and "without a token" in both[1]
    assert exposure_warnings("0.0.0.0", tls=True, token=True) == []
    assert len(exposure_warnings("10.1.2.3", tls=True, token=False)) == 1


def test_binding_every_interface_without_protection_warns(
    artifacts: Artifacts, caplog: pytest.LogCaptureFixture
) -> None:
    from lsr.serve.engine import Engine, EngineConfig
    from lsr.serve.server import ServerOptions, start_server

    engine = Engine(EngineConfig(index=artifacts.sparse_index))
    with caplog.at_level(logging.WARNING, logger="lsr.serve"):
        server = start_server(engine, ServerOptions(host="0.0.0.0", port=0))
    server.stop(grace=0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("without TLS" in m for m in messages) and any("without a token" in m for m in messages)


def test_a_key_that_does_not_match_the_certificate_is_named(tmp_path: Path) -> None:
    """It used to surface at bind time as "cannot listen on ...", which hides the cause."""
    from lsr.serve.server import ServerOptions, check_options

    from lsr.errors import LsrError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = self_signed(tmp_path / "a")
    _, other_key = self_signed(tmp_path / "b")
    with pytest.raises(LsrError, match="does not match") as caught:
        check_options(ServerOptions(port=0, tls_cert=cert, tls_key=other_key))
    assert str(cert) in str(caught.value) and str(other_key) in str(caught.value)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(LsrError, match="not a PEM certificate and its unencrypted PEM private key"):
        check_options(ServerOptions(port=0, tls_cert=cert, tls_key=junk))
    with pytest.raises(LsrError, match="cannot read"):
        check_options(ServerOptions(port=0, tls_cert=cert, tls_key=tmp_path / "missing.key"))


def test_a_mismatched_key_is_refused_by_start_server(artifacts: Artifacts, tmp_path: Path) -> None:
    from lsr.errors import LsrError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = self_signed(tmp_path / "a")
    _, other_key = self_signed(tmp_path / "b")
    with pytest.raises(LsrError, match="does not match the certificate"):
        with running(artifacts, dense=False, recommender=False, tls_cert=cert, tls_key=other_key):
            pass


@pytest.mark.parametrize("token", ["", "   ", "two words", "line\nbreak"])
def test_an_empty_or_unsendable_token_is_refused(artifacts: Artifacts, token: str) -> None:
    """An empty token used to turn authentication off without a word."""
    from lsr.errors import LsrError

    with pytest.raises(LsrError, match="token"):
        with running(artifacts, dense=False, recommender=False, token=token):
            pass


@pytest.mark.parametrize(("args", "env"), [(["--token", ""], {}), ([], {"LSR_TOKEN": ""})])
def test_lsr_serve_refuses_an_empty_token_before_loading(tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    from typer.testing import CliRunner

    from lsr.cli import app

    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "no-index"), *args], env=env)
    assert result.exit_code != 0
    assert "is empty" in str(result.exception) + result.output  # refused before the (missing) index is opened
