"""Malformed request bytes as INVALID_ARGUMENT, not INTERNAL with a traceback in the log.

gRPC calls a method's request deserializer itself; when it raises (bytes that are not the method's
protobuf message, or a string field that is not UTF-8), gRPC logs the exception with its traceback and
answers INTERNAL "Exception deserializing request!". That blames the server for the client's bytes and
lets any client fill the log. :class:`DecodeGuard` wraps every method's deserializer so a decode failure
becomes a marker value, and the method's behaviour answers the marker with INVALID_ARGUMENT and a message
naming the message type, without calling the servicer and without logging a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class Malformed:
    """What a guarded deserializer returns for bytes it cannot parse."""

    message: str


def _safe(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError (it names the type), or any parser error
            return Malformed(f"malformed request of {len(data)} bytes: {exc}")

    return parse


def _reject(request: Any, context: grpc.ServicerContext) -> Any:
    if isinstance(request, Malformed):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
    return request


def _checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        yield _reject(request, context)


def guarded(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The same handler, its deserializer made total and its behaviour rejecting :class:`Malformed` requests."""
    if handler.request_deserializer is None:
        return handler
    options = {
        "request_deserializer": _safe(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming:
        behaviour = handler.stream_stream or handler.stream_unary
        make = (
            grpc.stream_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.stream_unary_rpc_method_handler
        )
        return make(lambda requests, context: behaviour(_checked(requests, context), context), **options)
    behaviour = handler.unary_stream or handler.unary_unary
    make = grpc.unary_stream_rpc_method_handler if handler.response_streaming else grpc.unary_unary_rpc_method_handler
    return make(lambda request, context: behaviour(_reject(request, context), context), **options)


class DecodeGuard(grpc.ServerInterceptor):
    """Applies :func:`guarded` to every method of the server (lsr.v1, health, reflection)."""

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: Any
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        return guarded(handler) if handler is not None else None
