"""Errors the engine raises for a caller's mistake or a server state, each naming its gRPC status code.

The engine stays free of gRPC (it is usable and testable in-process); the servicers turn these into
``context.abort(code, message)``, so a bad request is a status with a message, never a crash.
"""

from __future__ import annotations


class ServeError(Exception):
    """Base class; ``code`` is the name of a ``grpc.StatusCode``."""

    code = "INTERNAL"


class InvalidArgument(ServeError):
    code = "INVALID_ARGUMENT"


class NotFound(ServeError):
    code = "NOT_FOUND"


class DeadlineExceeded(ServeError):
    code = "DEADLINE_EXCEEDED"


class Unavailable(ServeError):
    code = "UNAVAILABLE"


class ResourceExhausted(ServeError):
    """A well-formed request beyond what this server is configured to do for one call (its work budget, its
    message size): the code gRPC itself uses for an oversized message, so a client sees one code for both."""

    code = "RESOURCE_EXHAUSTED"
