"""``mvirt-log``: the audit log daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable

from mvirt.daemon import log_limits as limits
from mvirt.daemon.server import DaemonContext, DaemonSpec, Service, run
from mvirt.log.retention import RetentionPolicy, parse_duration, parse_size, run_retention
from mvirt.log.servicer import LogServicer
from mvirt.log.store import LogStore
from mvirt.proto import log_pb2, log_pb2_grpc

SERVICE_NAME = log_pb2.DESCRIPTOR.services_by_name["LogService"].full_name


def _flag_type(parse: Callable[[str], float]) -> Callable[[str], float]:
    # argparse shows an ArgumentTypeError's text; a ValueError only as "invalid value".
    def convert(text: str) -> float:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """mvirt-log's own flags: retention."""
    parser.add_argument(
        "--max-age",
        type=_flag_type(parse_duration),
        help="delete entries older than this (e.g. 30d)",
    )
    parser.add_argument(
        "--max-size", type=_flag_type(parse_size), help="keep the store below this size (e.g. 2G)"
    )
    parser.add_argument(
        "--retention-interval",
        type=_flag_type(parse_duration),
        default=60.0,
        help="how often retention runs (default: 60s)",
    )


async def create(ctx: DaemonContext) -> Service:
    """Opens the store and starts retention; returns the LogService registration."""
    store = await LogStore.open(ctx.data_dir)
    servicer = LogServicer(store, ctx)
    policy = RetentionPolicy(
        max_age_s=ctx.options.max_age,
        max_bytes=ctx.options.max_size,
        interval_s=ctx.options.retention_interval,
    )
    retention: asyncio.Task[None] | None = None
    if policy.max_age_s is not None or policy.max_bytes is not None:
        retention = asyncio.create_task(run_retention(store, policy, ctx.stopping, ctx.logger))

    async def close() -> None:
        if retention is not None:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
        await store.close()

    return Service(
        names=[SERVICE_NAME],
        register=lambda server: log_pb2_grpc.add_LogServiceServicer_to_server(servicer, server),
        close=close,
    )


SPEC = DaemonSpec(
    component="log",
    default_port=50052,
    description="mvirt-log: the central audit log, indexed by every related object id",
    create=create,
    add_arguments=add_arguments,
    server_options=[("grpc.max_receive_message_length", limits.MAX_RECEIVE_BYTES)],
    maximum_concurrent_rpcs=limits.MAX_CONCURRENT_RPCS,
)


def main() -> None:
    """Console entry point."""
    run(SPEC)


if __name__ == "__main__":
    main()
