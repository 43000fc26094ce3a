"""Bearer-token checking on every call, TLS credentials from files, and warnings about exposed servers.

Both are off by default because the default bind address is the loopback interface, which only this
machine reaches. Bound anywhere else, a server without TLS sends queries (and any token) in clear
text, and one without a token answers anyone who can reach the port: :func:`exposure_warnings` says
so at start-up. The health service is exempt from the token, so load balancers and orchestrators can
probe the server without holding the secret; it reveals nothing but SERVING / NOT_SERVING.
"""

from __future__ import annotations

import hmac
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from lsr.errors import LsrError

HEALTH_PREFIX = "/grpc.health.v1.Health/"


class TokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` metadata with UNAUTHENTICATED."""

    def __init__(self, token: str, exempt_prefixes: tuple[str, ...] = (HEALTH_PREFIX,)) -> None:
        if not token:
            raise ValueError("an empty token would accept anyone")
        self._expected = f"Bearer {token}".encode()
        self._exempt = exempt_prefixes

    def _authorised(self, metadata: tuple[Any, ...]) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._expected)  # constant time: no timing oracle
        return False

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: Any
    ) -> grpc.RpcMethodHandler | None:
        if details.method.startswith(self._exempt) or self._authorised(details.invocation_metadata):
            return continuation(details)
        handler = continuation(details)
        return _deny(handler)


def _deny(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape as ``handler`` that aborts with UNAUTHENTICATED."""

    def abort(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token (authorization metadata)")

    if handler is not None and handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler is not None and handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


def check_token(token: str | None) -> None:
    """Refuse a token that would silently weaken auth: an empty one (``--token ""``, ``LSR_TOKEN=``) reads as
    "no token" to gRPC, and one with characters a metadata value cannot carry could never be presented."""
    if token is None:
        return
    if not token.strip():
        raise LsrError("the token (--token or LSR_TOKEN) is empty: give a secret, or unset it to serve without one")
    if not all(" " < ch <= "~" for ch in token):
        raise LsrError("the token (--token or LSR_TOKEN) must be printable ASCII without spaces (a metadata value)")


def check_key_pair(cert: Path, key: Path) -> None:
    """Load the pair with OpenSSL first: gRPC accepts any bytes here and only fails later, at bind time, as
    "cannot listen", which hides that the key does not belong to the certificate or a file is not PEM."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=lambda: b"")  # an encrypted key fails instead of prompting
    except OSError as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise LsrError(f"the TLS key {key} does not match the certificate {cert}") from None
        if isinstance(exc, ssl.SSLError):
            raise LsrError(
                f"cannot load the TLS certificate {cert} with the key {key}: not a PEM certificate and its "
                f"unencrypted PEM private key ({exc.reason or exc})"
            ) from None
        raise LsrError(f"cannot read the TLS certificate or key ({exc})") from None


def server_credentials(cert: Path, key: Path) -> grpc.ServerCredentials:
    """TLS credentials from a PEM certificate (chain) and its private key, checked to belong together."""
    check_key_pair(cert, key)
    return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_warnings(host: str, tls: bool, token: bool) -> list[str]:
    """What is unsafe about serving on ``host`` with these settings (nothing on the loopback interface)."""
    if is_loopback(host):
        return []
    warnings = []
    if not tls:
        warnings.append(
            f"serving on {host} without TLS: queries, results and any token cross the network in clear text "
            "(--tls-cert/--tls-key)"
        )
    if not token:
        warnings.append(
            f"serving on {host} without a token: anyone who reaches the port can query (--token or LSR_TOKEN)"
        )
    return warnings
