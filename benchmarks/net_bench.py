#!/usr/bin/env python3
"""mvirt-net benchmark: CreateNic -> usable TAP latency, DHCPv4 DORA and DHCPv6 latency as a
guest sees them, and the control plane's CPU time per 1,000 leases. Prints numbers and a short
table; asserts nothing. Needs root (it creates network namespaces, removed at the end).

    .venv/bin/python benchmarks/net_bench.py [--nics 50] [--leases 1000]

The daemon runs in a namespace of its own; the "guest" is a namespace whose eth0 is joined to
a NIC's TAP by the test suite's frame relay (a Python thread, as a hypervisor would do), so the
DHCP latencies include two relay hops per packet. CPU is the daemon process's user+system time
(from /proc) across the DHCP exchanges, so it covers parsing, answering and sending.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from mvirt.pideisn import dhcp4_codec as c4
from mvirt.pideisn import dhcp6_codec as c6
from mvirt.proto import net_pb2, net_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.net.guest import NsGuest  # noqa: E402
from tests.net.netns import Netns, Relay, enter  # noqa: E402

SO_BINDTODEVICE = 25
PORT = 50054


def start_daemon(ns: Netns, data_dir: Path) -> tuple[object, net_pb2_grpc.NetServiceStub]:
    proc = ns.popen(
        [
            sys.executable,
            "-m",
            "mvirt.net",
            "--listen",
            f"127.0.0.1:{PORT}",
            "--data-dir",
            str(data_dir),
            "--log-endpoint",
            "",
        ],
        data_dir.parent / "net.stderr",
    )
    relay = Relay(ns.name, PORT)
    stub = net_pb2_grpc.NetServiceStub(grpc.insecure_channel(relay.endpoint))
    deadline = time.monotonic() + 30
    while True:
        try:
            stub.GetVersion(net_pb2.GetVersionRequest(), timeout=1)
            return proc, stub
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise SystemExit("mvirt-net did not start") from None
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Dhcp4Client:
    """A DHCPv4 client socket on the guest's eth0 (created inside the guest namespace)."""

    def __init__(self, guest_ns: str, mac: str) -> None:
        self.mac = bytes.fromhex(mac.replace(":", ""))
        ready = threading.Event()

        def make() -> None:
            enter(guest_ns)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, b"eth0")
            self.sock.bind(("0.0.0.0", 68))
            self.sock.settimeout(5)
            ready.set()

        threading.Thread(target=make).start()
        ready.wait()

    def exchange(self, kind: int, xid: int, options: dict[int, bytes]) -> c4.Message:
        opts = {c4.OPT_MESSAGE_TYPE: bytes((kind,)), **options}
        self.sock.sendto(
            c4.Message(c4.BOOTREQUEST, xid, self.mac, opts).encode(), ("255.255.255.255", 67)
        )
        while True:
            reply = c4.Message.decode(self.sock.recvfrom(2048)[0])
            if reply.xid == xid:
                return reply

    def dora(self) -> float:
        xid = random.getrandbits(32)
        start = time.perf_counter()
        offer = self.exchange(c4.DISCOVER, xid, {})
        ack = self.exchange(
            c4.REQUEST,
            xid,
            {c4.OPT_REQUESTED_IP: c4.ip_to_bytes(offer.yiaddr), c4.OPT_SERVER_ID: b"\xa9\xfe\0\1"},
        )
        elapsed = time.perf_counter() - start
        assert ack.message_type == c4.ACK, ack
        return elapsed


class Dhcp6Client:
    """A DHCPv6 client socket on the guest's eth0 link-local address."""

    def __init__(self, guest: NsGuest, mac: str) -> None:
        self.duid = c6.duid_ll(bytes.fromhex(mac.replace(":", "")))
        deadline = time.monotonic() + 30
        while True:
            out = guest.ns.run("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
            if out.stdout and "tentative" not in out.stdout:
                break
            if time.monotonic() > deadline:
                raise SystemExit("guest link-local address never became usable")
            time.sleep(0.1)
        ready = threading.Event()

        def make() -> None:
            enter(guest.ns.name)
            self.index = socket.if_nametoindex("eth0")
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, b"eth0")
            self.sock.bind(("::", 546))
            self.sock.settimeout(5)
            ready.set()

        threading.Thread(target=make).start()
        ready.wait()

    def exchange(self, kind: int, extra: list[tuple[int, bytes]]) -> tuple[float, c6.Message]:
        xid = random.getrandbits(24)
        ia = c6.IdentityAssociation(c6.OPT_IA_NA, 1).encode()
        options = [(c6.OPT_CLIENTID, self.duid), (c6.OPT_IA_NA, ia), *extra]
        start = time.perf_counter()
        self.sock.sendto(c6.Message(kind, xid, options).encode(), ("ff02::1:2", 547, 0, self.index))
        while True:
            reply = c6.Message.decode(self.sock.recvfrom(2048)[0])
            if reply.xid == xid:
                return time.perf_counter() - start, reply

    def four_messages(self) -> float:
        first, adv = self.exchange(c6.SOLICIT, [])
        server = adv.get(c6.OPT_SERVERID) or b""
        second, reply = self.exchange(c6.REQUEST, [(c6.OPT_SERVERID, server)])
        assert reply.kind == c6.REPLY
        return first + second

    def rapid_commit(self) -> float:
        elapsed, reply = self.exchange(c6.SOLICIT, [(c6.OPT_RAPID_COMMIT, b"")])
        assert reply.kind == c6.REPLY
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nics", type=int, default=50, help="NICs created for the TAP latency")
    parser.add_argument("--leases", type=int, default=1000, help="DORA exchanges for CPU time")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark creates network namespaces")
    ns = Netns("mvb")
    tmp = Path(tempfile.mkdtemp(prefix="mvnet-bench-"))
    guest: NsGuest | None = None
    proc = None
    try:
        proc, stub = start_daemon(ns, tmp / "data")
        stub.CreateNetwork(
            net_pb2.CreateNetworkRequest(
                name="bench",
                ipv4_subnet="10.50.0.0/16",
                ipv6_prefix="fd00:50::/64",
                dns_servers=["10.50.0.53", "fd00:50::53"],
            )
        )
        create_ms: list[float] = []
        for _ in range(args.nics):
            start = time.perf_counter()
            nic = stub.CreateNic(net_pb2.CreateNicRequest(network_id="bench"))
            create_ms.append((time.perf_counter() - start) * 1000)
            # Usable: the TAP exists, is up and has the gateway address when the call returns.
            assert "169.254.0.1" in ns.run("ip", "-4", "addr", "show", nic.tap_name).stdout
        guest = NsGuest(ns.name, nic.tap_name, nic.mac_address, configure=False)
        v4 = Dhcp4Client(guest.ns.name, nic.mac_address)
        v4.dora()  # warm-up: neighbour state, first socket wake-ups
        dora_ms = [v4.dora() * 1000 for _ in range(100)]
        v6 = Dhcp6Client(guest, nic.mac_address)
        v6.four_messages()
        v6_ms = [v6.four_messages() * 1000 for _ in range(100)]
        rapid_ms = [v6.rapid_commit() * 1000 for _ in range(100)]
        before = cpu_seconds(proc.pid)  # type: ignore[attr-defined]
        wall = time.perf_counter()
        for _ in range(args.leases):
            v4.dora()
        wall = time.perf_counter() - wall
        cpu = cpu_seconds(proc.pid) - before  # type: ignore[attr-defined]
    finally:
        if guest is not None:
            guest.close()
        if proc is not None:
            proc.kill()  # type: ignore[attr-defined]
            proc.wait()  # type: ignore[attr-defined]
        ns.delete()
    print(f"host: {os.cpu_count()} cores; {args.nics} NICs, {args.leases} DORA exchanges")
    print(f"{'measure':34} {'median ms':>10} {'p95 ms':>10}")
    for label, values in (
        ("CreateNic -> usable TAP", create_ms),
        ("DHCPv4 DORA (4 messages)", dora_ms),
        ("DHCPv6 SOLICIT..REPLY (4 messages)", v6_ms),
        ("DHCPv6 rapid commit (2 messages)", rapid_ms),
    ):
        print(f"{label:34} {statistics.median(values):10.2f} {percentile(values, 0.95):10.2f}")
    per_1000 = cpu / args.leases * 1000
    print()
    print(f"control-plane CPU: {per_1000:.2f} s per 1,000 leases (DORA), "
          f"{args.leases / wall:.0f} leases/s wall")  # fmt: skip


if __name__ == "__main__":
    main()
