"""The gRPC server: the lsr.v1 services, health checking and reflection, bounded concurrency, TLS, token auth.

Load behaviour, which is gRPC's own and set here:

- ``workers`` threads run handlers; most of a handler's time is spent waiting for its micro-batch, so
  there should be at least as many workers as queries one wants batched together;
- at most ``max_in_flight`` calls are accepted at once (running plus waiting for a worker, i.e. a
  bounded queue); gRPC answers any call beyond that at once with RESOURCE_EXHAUSTED, so an
  overloaded server sheds load instead of queueing without bound and answering everyone late;
- messages above ``max_message_bytes`` are refused (RESOURCE_EXHAUSTED) before they are parsed, and
  replies that could exceed it before any work (:mod:`lsr.serve.servicer`); bytes that do not parse are
  INVALID_ARGUMENT (:mod:`lsr.serve.decoding`);
- :meth:`RunningServer.stop` reports NOT_SERVING to health checks, refuses new calls, lets calls in
  flight finish (up to ``grace`` seconds), and only then stops the batchers.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from lsr.serve.auth import TokenInterceptor, check_token, exposure_warnings, server_credentials
from lsr.serve.decoding import DecodeGuard
from lsr.serve.engine import Engine
from lsr.serve.proto.lsr.v1 import lsr_pb2, lsr_pb2_grpc
from lsr.serve.servicer import CallTracker, RecommendationServicer, RetrievalServicer

log = logging.getLogger("lsr.serve")

RETRIEVAL = lsr_pb2.DESCRIPTOR.services_by_name["Retrieval"].full_name
RECOMMENDATION = lsr_pb2.DESCRIPTOR.services_by_name["Recommendation"].full_name


@dataclass
class ServerOptions:
    """Network, capacity and security settings (the engine's are in :class:`~lsr.serve.engine.EngineConfig`)."""

    host: str = "127.0.0.1"
    port: int = 50051  # 0: any free port (RunningServer.port says which)
    workers: int = 32
    max_in_flight: int = 128
    max_message_bytes: int = 4 * 1024 * 1024
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token: str | None = None
    grace: float = 10.0


@dataclass
class RunningServer:
    """A started server: its port, and a graceful :meth:`stop`."""

    server: grpc.Server
    engine: Engine
    health: health.HealthServicer
    tracker: CallTracker
    port: int
    address: str

    def stop(self, grace: float | None = 10.0) -> None:
        """Refuse new calls, finish those in flight (at most ``grace`` seconds), then stop the batchers."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.engine.close()

    def wait(self) -> None:
        """Block until the server stops."""
        self.server.wait_for_termination()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def check_options(options: ServerOptions) -> grpc.ServerCredentials | None:
    """Refuse settings that cannot work or would silently weaken security; the TLS credentials, if any.
    Cheap, so ``lsr serve`` runs it before the minutes an engine may take to load."""
    from lsr.errors import LsrError

    if (options.tls_cert is None) != (options.tls_key is None):
        raise LsrError("TLS needs both --tls-cert and --tls-key")
    if options.max_in_flight < 1 or options.workers < 1:
        raise LsrError("--workers and --max-in-flight must be at least 1")
    check_token(options.token)
    if options.tls_cert is not None and options.tls_key is not None:
        return server_credentials(options.tls_cert, options.tls_key)
    return None


def start_server(engine: Engine, options: ServerOptions) -> RunningServer:
    """Start serving ``engine`` as configured; warnings about an exposed address go to the log."""
    from lsr.errors import LsrError

    credentials = check_options(options)
    for warning in exposure_warnings(options.host, credentials is not None, options.token is not None):
        log.warning(warning)
    limit = options.max_message_bytes
    server = grpc.server(
        ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="lsr-grpc"),
        # the token first: a caller without it learns nothing, not even whether its bytes parse
        interceptors=[*([TokenInterceptor(options.token)] if options.token is not None else []), DecodeGuard()],
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a second server sharing it
        ],
        maximum_concurrent_rpcs=options.max_in_flight,
    )
    tracker = CallTracker()
    lsr_pb2_grpc.add_RetrievalServicer_to_server(RetrievalServicer(engine, tracker, limit), server)
    services = [RETRIEVAL]
    if engine.recommender is not None:
        lsr_pb2_grpc.add_RecommendationServicer_to_server(RecommendationServicer(engine, tracker), server)
        services.append(RECOMMENDATION)
    checker = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ("", *services):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    address = _address(options.host, options.port)
    try:
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise LsrError(f"cannot listen on {address} ({exc})") from exc
    if port == 0:
        raise LsrError(f"cannot listen on {address} (in use, or not an address of this machine)")
    server.start()
    return RunningServer(server, engine, checker, tracker, port, _address(options.host, port))


def serve_until_signalled(running: RunningServer, grace: float) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (a second signal does not cut the grace short)."""
    import signal

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
        log.warning("stopping: finishing calls in flight (at most %.0f s)", grace)
        running.stop(grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
