#!/usr/bin/env python3
"""Mutual TLS cost on the API: what a daemon's first start spends making the node identity,
what a client spends to connect (handshake + fingerprint check + channel), the latency of a
unary call on an open channel, and a whole ``mvirt logs`` run, each plaintext next to TLS.

Runs a real mvirt-log on loopback with keys from ``mvirt-build genkey``'s code.
Run: ``.venv/bin/python benchmarks/tls_bench.py [--calls N]``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from mvirt.daemon import tls
from mvirt.proto import log_pb2, log_pb2_grpc
from mvirt_build.api_keys import generate_api_keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mvirt-log exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise SystemExit("mvirt-log did not listen in time")


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered) * 1000:.2f} / {p95 * 1000:.2f}"


def timed(func: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="unary calls per transport")
    parser.add_argument("--connects", type=int, default=30, help="new connections per transport")
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mvirt-tls-bench-"))
    keys = generate_api_keys(work / "keys")
    plain_port, tls_port = free_port(), free_port()
    plain, secure = f"127.0.0.1:{plain_port}", f"127.0.0.1:{tls_port}"
    tls_dir = work / "tls"
    rows: list[tuple[str, str, str]] = []

    def start_daemon() -> tuple[subprocess.Popen[bytes], float]:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mvirt.log", "--listen", plain, "--data-dir",
             str(work / "data"), "--tls-listen", secure, "--tls-client-ca", str(keys.ca.cert),
             "--tls-dir", str(tls_dir)],
            stdout=subprocess.DEVNULL, stderr=open(work / "stderr", "ab"),  # noqa: SIM115
        )  # fmt: skip
        wait_port(tls_port, proc)
        return proc, time.perf_counter() - start

    proc, first = start_daemon()
    proc.terminate()
    proc.wait(30)
    proc, again = start_daemon()
    fingerprint = re.findall(r"SHA256:[0-9a-f]{64}", (work / "stderr").read_text())[-1]
    print(
        f"daemon start to TLS port open: {first:.2f} s making the identity, {again:.2f} s with "
        "the identity in place"
    )
    try:
        identity = tls.load_client_identity(work / "keys")
        request = log_pb2.GetVersionRequest()

        def plain_connect() -> None:
            with grpc.insecure_channel(plain) as channel:
                log_pb2_grpc.LogServiceStub(channel).GetVersion(request, timeout=10)

        def tls_connect() -> None:
            channel, _ = tls.connect_pinned(secure, identity, fingerprint)
            with channel:
                log_pb2_grpc.LogServiceStub(channel).GetVersion(request, timeout=10)

        rows.append(
            (
                "connect + first call, median / p95 (ms)",
                ms(timed(plain_connect, args.connects)),
                ms(timed(tls_connect, args.connects)),
            )
        )
        channel, _ = tls.connect_pinned(secure, identity, fingerprint)
        with grpc.insecure_channel(plain) as plain_channel, channel:
            plain_stub = log_pb2_grpc.LogServiceStub(plain_channel)
            tls_stub = log_pb2_grpc.LogServiceStub(channel)
            plain_stub.GetVersion(request)
            tls_stub.GetVersion(request)
            rows.append(
                (
                    "GetVersion on an open channel, median / p95 (ms)",
                    ms(timed(lambda: plain_stub.GetVersion(request), args.calls)),
                    ms(timed(lambda: tls_stub.GetVersion(request), args.calls)),
                )
            )
        env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config")}
        mvirt = [sys.executable, "-m", "mvirt.cli"]

        def cli(*extra: str) -> Callable[[], object]:
            return lambda: subprocess.run(
                [*mvirt, *extra, "logs", "-n", "1"], check=True, env=env, capture_output=True
            )

        rows.append(
            (
                "`mvirt logs -n 1` whole run, median / p95 (ms)",
                ms(timed(cli("--log-server", plain), args.cli_runs)),
                ms(timed(cli("--log-server", secure, "--tls", str(work / "keys")), args.cli_runs)),
            )
        )
    finally:
        proc.terminate()
        proc.wait(30)
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'plaintext':>22}  {'mutual TLS':>22}")
    for name, a, b in rows:
        print(f"{name:{width}}  {a:>22}  {b:>22}")


if __name__ == "__main__":
    main()
