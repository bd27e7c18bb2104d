"""Readiness probe for a daemon's gRPC health service (``grpc.health.v1.Health/Check``).

``python3 -m mvirt.daemon.health_probe [::1]:50052 --wait 30`` exits 0 once the daemon answers
SERVING (for the whole server, or ``--service NAME``), else 1 with one line saying why. pideisn
runs it as a service's ``ready = { command = [...] }``: the gRPC client lives in this child
process, never in PID 1. ``--wait`` keeps trying (gRPC's wait-for-ready) for that long, so one
probe process usually covers a daemon's whole start-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

EXIT_READY = 0
EXIT_NOT_READY = 1


def check(address: str, service: str = "", wait: float = 0.0) -> str | None:
    """None when ``address`` reports SERVING for ``service``, else why not."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=max(wait, 1.0),
                wait_for_ready=wait > 0,
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            return f"{address}: {code.name if code else 'error'}: {detail}"
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return f"{address}: health status {status}"
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: exit status 0 when serving."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mvirt.daemon.health_probe",
        description="Exit 0 when a gRPC server's health service answers SERVING.",
    )
    parser.add_argument("address", help="HOST:PORT of the daemon, e.g. [::1]:50051")
    parser.add_argument("--service", default="", help="service name (default: the server)")
    parser.add_argument(
        "--wait", type=float, default=0.0, help="seconds to keep trying (default: one try)"
    )
    options = parser.parse_args(argv)
    problem = check(options.address, options.service, options.wait)
    if problem is not None:
        print(f"not ready: {problem}", file=sys.stderr)
        sys.exit(EXIT_NOT_READY)
    sys.exit(EXIT_READY)


if __name__ == "__main__":
    main()
