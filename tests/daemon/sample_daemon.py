"""A minimal daemon on the shared foundation, used to test the bootstrap itself.

It serves ``/sample.Sample/Sleep`` (sleeps the seconds given as ASCII, then answers),
``/sample.Sample/Fail`` (raises the error class named in the request) and
``/sample.Sample/Audit`` (records an audit entry with the request as message), with raw-byte
messages, so no .proto is needed.
"""

from __future__ import annotations

import asyncio

import grpc

from mvirt.daemon import DaemonContext, DaemonSpec, Service, errors, run
from mvirt.proto import log_pb2


async def create(ctx: DaemonContext) -> Service:
    async def sleep(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        (ctx.data_dir / "sleeping").write_text("yes")  # lets a test know the call arrived
        await asyncio.sleep(float(request.decode()))
        return b"done"

    async def fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        name = request.decode()
        if name == "RuntimeError":
            raise RuntimeError("boom")
        raise getattr(errors, name)(f"sample {name}", hint="do the other thing")

    async def audit(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return ctx.audit.log(log_pb2.AUDIT, request.decode(), ["sample-1"]).encode()

    handlers = grpc.method_handlers_generic_handler(
        "sample.Sample",
        {
            "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Audit": grpc.unary_unary_rpc_method_handler(audit),
        },
    )
    closed = ctx.data_dir / "closed"

    async def close() -> None:
        closed.write_text("yes")

    return Service(
        names=["sample.Sample"],
        register=lambda server: server.add_generic_rpc_handlers((handlers,)),
        close=close,
    )


if __name__ == "__main__":
    run(DaemonSpec(component="sample", default_port=50099, description="sample", create=create))
