#!/usr/bin/env python3
"""mvirt-net benchmark: CreateNic -> usable TAP latency, DHCPv4 DORA and DHCPv6 latency as a
guest sees them, the control plane's CPU time per 1,000 leases, and guest-to-guest TCP
throughput through mvirt-net next to a plain Linux bridge. Prints numbers and a short table;
asserts nothing. Needs root (it creates network namespaces, removed at the end).

    .venv/bin/python benchmarks/net_bench.py [--nics 50] [--leases 1000]
        [--stream-mib 32] [--rounds 3] [--no-throughput]

The daemon runs in a namespace of its own; the "guest" is a namespace whose eth0 is joined to
a NIC's TAP by the test suite's frame relay (a Python thread, as a hypervisor would do), so the
DHCP latencies include two relay hops per packet. CPU is the daemon process's user+system time
(from /proc) across the DHCP exchanges, so it covers parsing, answering and sending.

Throughput: four QEMU guests boot the project's built kernel (`mvirt-build uki`) and an
initramfs the builder makes with the test probe laid over it (`mvirt-build --extra-tree`;
tests/net/probe_service.py: a TCP sender and a sink that checks every byte), same kernel,
command line and QEMU flags. Two sit on TAPs of one mvirt-net network (routed
through the kernel, nftables anti-spoofing and isolation in the path); two on TAPs enslaved to
a plain Linux bridge in a namespace of its own, addressed by dnsmasq. The sender guest streams
a fixed amount to the other guest of its pair and reports bytes and seconds; the rounds take
turns between the two setups, and the medians are compared.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from mvirt.pideisn import dhcp4_codec as c4
from mvirt.pideisn import dhcp6_codec as c6
from mvirt.proto import net_pb2, net_pb2_grpc
from mvirt_build import config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.net.guest import NsGuest  # noqa: E402
from tests.net.image_guest import ImageGuest, image_paths, probe_tree  # noqa: E402
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


BOOT_TIMEOUT = 300
BRIDGE_NET = "10.77.0"


def stream(sender: ImageGuest, sender_ip: str, receiver_ip: str, size: int) -> float:
    """Streams ``size`` bytes from ``sender`` to ``receiver_ip``; returns Mbit/s."""
    answer = sender.probe(sender_ip, f"send {receiver_ip} {size}", timeout=600)
    words = answer.split()
    if len(words) != 6 or words[0] != "sent" or words[4:] != [str(size), "1"]:
        raise SystemExit(f"the TCP stream did not arrive whole: {answer!r}")
    return size * 8 / float(words[2]) / 1e6


def bridge_pair(
    ns: Netns, tmp: Path, initrd: Path, kernel: Path, made: list[ImageGuest]
) -> tuple[subprocess.Popen[bytes], list[tuple[ImageGuest, str]]]:
    """Two guests (appended to ``made``) on TAPs of a plain bridge in ``ns``; dnsmasq (returned,
    for the caller to stop) hands out their addresses."""
    ns.run("ip", "link", "add", "br0", "type", "bridge")
    # A plain bridge: where br_netfilter is loaded, bridged frames would also pass the
    # netfilter hooks (per namespace since Linux 5.3); switched off in this namespace.
    for family in ("iptables", "ip6tables", "arptables"):
        ns.run("sysctl", "-qw", f"net.bridge.bridge-nf-call-{family}=0", check=False)
    ns.run("ip", "addr", "add", f"{BRIDGE_NET}.1/24", "dev", "br0")
    ns.run("ip", "link", "set", "br0", "up")
    taps = []
    for i in (1, 2):
        tap = f"brtap{i}"
        ns.run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        ns.run("ip", "link", "set", tap, "master", "br0")
        ns.run("ip", "link", "set", tap, "up")
        taps.append(tap)
    dnsmasq = ns.popen(
        [
            "dnsmasq", "--keep-in-foreground", "--port=0", "--interface=br0",
            "--bind-interfaces", f"--dhcp-range={BRIDGE_NET}.10,{BRIDGE_NET}.50,255.255.255.0",
            f"--dhcp-leasefile={tmp / 'dnsmasq.leases'}", "--pid-file=", "--conf-file=/dev/null",
        ],
        tmp / "dnsmasq.stderr",
    )  # fmt: skip
    for i, tap in enumerate(taps, 1):
        made.append(ImageGuest(ns.name, tap, f"02:00:00:77:00:0{i}", initrd, kernel))
    found = []
    for guest in made[-2:]:
        line = guest.wait_for(f"eth0: DHCPv4 {BRIDGE_NET}.", BOOT_TIMEOUT)
        match = re.search(rf"({re.escape(BRIDGE_NET)}\.\d+)/", line)
        if match is None:
            raise SystemExit(f"no address in {line!r}")
        guest.wait_for("probe: ready", BOOT_TIMEOUT)
        found.append((guest, match.group(1)))
    return dnsmasq, found


def probe_image(tmp: Path) -> Path:
    """The image's initramfs with the probe service laid over it by the builder itself
    (``mvirt-build --extra-tree``, into a build folder under ``tmp``; the caches are shared,
    so only the initramfs stage runs)."""
    build = tmp / "probe-build"
    argv = [
        str(Path(sys.executable).with_name("mvirt-build")),
        "--output-dir", str(build),
        "--extra-tree", str(probe_tree(tmp / "probe-tree")),
        "--allow-missing-downloads",
        "initramfs",
    ]  # fmt: skip
    print("building the image's initramfs with the probe service...", flush=True)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mvirt-build failed:\n{done.stdout}{done.stderr}")
    return config.initramfs_image(config.load(ROOT, output_dir=build))


def throughput(
    ns: Netns, stub: net_pb2_grpc.NetServiceStub, tmp: Path, size: int, rounds: int
) -> tuple[list[float], list[float]]:
    """Mbit/s of each round through mvirt-net and through the plain bridge."""
    paths = image_paths()
    if paths is None:
        raise SystemExit("no built image: run `.venv/bin/mvirt-build uki` first")
    kernel = paths[0]
    initrd = probe_image(tmp)
    stub.CreateNetwork(net_pb2.CreateNetworkRequest(name="tput", ipv4_subnet="10.60.0.0/24"))
    nics = [stub.CreateNic(net_pb2.CreateNicRequest(network_id="tput")) for _ in range(2)]
    bridge_ns = Netns("mvbr")
    guests: list[ImageGuest] = []
    dnsmasq: subprocess.Popen[bytes] | None = None
    try:
        for nic in nics:
            guests.append(ImageGuest(ns.name, nic.tap_name, nic.mac_address, initrd, kernel))
        for guest in guests:
            guest.wait_for("probe: ready", BOOT_TIMEOUT)
        routed = [(g, n.ipv4_address) for g, n in zip(guests, nics, strict=True)]
        dnsmasq, bridged = bridge_pair(bridge_ns, tmp, initrd, kernel, guests)
        # Warm-up: neighbour and route caches, the guests' first connection.
        stream(routed[0][0], routed[0][1], routed[1][1], 1 << 20)
        stream(bridged[0][0], bridged[0][1], bridged[1][1], 1 << 20)
        net_mbit: list[float] = []
        bridge_mbit: list[float] = []
        for i in range(rounds):
            # Taking turns, and who goes first alternates: neither setup always runs right
            # after the other's stream (whose guests may still be busy finishing it).
            order = [(net_mbit, routed), (bridge_mbit, bridged)]
            for results, ((sender, sender_ip), (_, receiver_ip)) in order[:: 1 - 2 * (i % 2)]:
                results.append(stream(sender, sender_ip, receiver_ip, size))
        return net_mbit, bridge_mbit
    finally:
        for guest in guests:
            guest.close()
        if dnsmasq is not None:
            dnsmasq.kill()
            dnsmasq.wait()
        bridge_ns.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nics", type=int, default=50, help="NICs created for the TAP latency")
    parser.add_argument("--leases", type=int, default=1000, help="DORA exchanges for CPU time")
    parser.add_argument("--stream-mib", type=int, default=32, help="MiB per TCP stream")
    parser.add_argument("--rounds", type=int, default=3, help="TCP streams per setup")
    parser.add_argument(
        "--no-throughput", action="store_true", help="skip the guest TCP throughput (boots QEMU)"
    )
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
        tput = None
        if not args.no_throughput:
            tput = throughput(ns, stub, tmp, args.stream_mib << 20, args.rounds)
    finally:
        if guest is not None:
            guest.close()
        if proc is not None:
            proc.kill()  # type: ignore[attr-defined]
            proc.wait()  # type: ignore[attr-defined]
        ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"host: {os.cpu_count()} cores, load {load}; {args.nics} NICs, {args.leases} DORA exchanges"
    )
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
    if tput is not None:
        net_mbit, bridge_mbit = tput
        net_median, bridge_median = statistics.median(net_mbit), statistics.median(bridge_mbit)
        print()
        print(f"guest-to-guest TCP, {args.stream_mib} MiB x {args.rounds} rounds (QEMU, TCG)")
        print(f"{'path':34} {'median Mbit/s':>14} {'rounds':>24}")
        for label, values in (
            ("mvirt-net (routed, nftables)", net_mbit),
            ("plain Linux bridge", bridge_mbit),
        ):
            rounds = " ".join(f"{v:.0f}" for v in values)
            print(f"{label:34} {statistics.median(values):14.1f} {rounds:>24}")
        print(f"ratio mvirt-net / bridge: {net_median / bridge_median:.2f}x (goal >= 0.9x)")


if __name__ == "__main__":
    main()
