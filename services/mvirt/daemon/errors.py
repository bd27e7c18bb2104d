"""Domain errors shared by every daemon and their mapping to gRPC status codes.

Servicers and stores raise these; the :class:`ErrorMappingInterceptor` turns them into the
matching status with the error's message, so an API handler never builds a status by hand and
no nameable failure reaches a client as UNKNOWN.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc.aio import AbortError


class MvirtError(Exception):
    """Base of the errors a daemon reports to its clients; ``str()`` is the client message."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message if hint is None else f"{message}; {hint}"
        super().__init__(self.message)


class InvalidArgumentError(MvirtError):
    """The request is malformed or a value is out of range (the client must change it)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(MvirtError):
    """The named object does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(MvirtError):
    """An object with that name or id exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(MvirtError):
    """The object is in a state that forbids the operation (e.g. deleting a running VM)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(MvirtError):
    """A backend the daemon depends on is down; the client may retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhaustedError(MvirtError):
    """A bounded resource is full (too many viewers or follow streams, a client too slow to
    keep up); retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


_log = logging.getLogger("mvirt.daemon.errors")


def _describe_internal(method: str, exc: BaseException) -> str:
    _log.error("unhandled error in %s", method, exc_info=exc, extra={"method": method})
    return f"internal error in {method}: {type(exc).__name__}: {exc} (details in the daemon log)"


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Maps :class:`MvirtError` (and unexpected exceptions) to gRPC status codes."""

    def __init__(self) -> None:
        # Wrapped handlers are built once per method, not on every call.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wraps the method handler so that its exceptions become statuses."""
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped = _wrap_handler(handler, method)
        self._wrapped[method] = wrapped
        return wrapped


def _wrap_handler(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    decode = _tolerant(handler.request_deserializer)
    encode = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method, streaming=False),
            request_deserializer=decode,
            response_serializer=encode,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary(handler.stream_unary, method, streaming=True),
            request_deserializer=decode,
            response_serializer=encode,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream(handler.unary_stream, method, streaming=False),
            request_deserializer=decode,
            response_serializer=encode,
        )
    return grpc.stream_stream_rpc_method_handler(
        _wrap_stream(handler.stream_stream, method, streaming=True),
        request_deserializer=decode,
        response_serializer=encode,
    )


class _Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(decode: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    # A deserializer that raises makes gRPC answer UNKNOWN; this turns the failure into a
    # value the wrapped handler reports as INVALID_ARGUMENT.
    if decode is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:
            return _Undecodable(exc)

    return parse


def _check_decoded(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgumentError(f"request message could not be decoded: {request.error}")


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        _check_decoded(request)
        yield request


def _wrap_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    method: str,
    streaming: bool,
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            if streaming:
                request = _checked_stream(request)
            else:
                _check_decoded(request)
            return await behavior(request, context)
        except AbortError:
            raise
        except MvirtError as exc:
            await context.abort(exc.code, exc.message)
        except Exception as exc:
            await context.abort(grpc.StatusCode.INTERNAL, _describe_internal(method, exc))

    return call


def _wrap_stream(
    behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]],
    method: str,
    streaming: bool,
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            if streaming:
                request = _checked_stream(request)
            else:
                _check_decoded(request)
            async for item in behavior(request, context):
                yield item
        except AbortError:
            raise
        except MvirtError as exc:
            await context.abort(exc.code, exc.message)
        except Exception as exc:
            await context.abort(grpc.StatusCode.INTERNAL, _describe_internal(method, exc))

    return call
