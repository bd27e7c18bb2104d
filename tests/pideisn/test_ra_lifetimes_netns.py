"""Router advertisement lifetimes against the real kernel: with accept_ra=0 pideisn must remove
the default route, the on-link route, the SLAAC address and the RDNSS server itself when a
router falls silent; and an address that fails DAD is noticed (needs root; skipped otherwise).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .netns import CLIENT_IF, SERVER_IF, NetnsPair, require_netns

pytestmark = pytest.mark.slow

# A router's ICMPv6 socket on srv0, in the all-routers group (the scripts below start so).
ROUTER_SOCKET = """
import _socket, struct, sys, time
from mvirt.pideisn import ndp_codec as codec
s = _socket.socket(_socket.AF_INET6, _socket.SOCK_RAW, _socket.IPPROTO_ICMPV6)
s.setsockopt(_socket.SOL_SOCKET, _socket.SO_BINDTODEVICE, b"srv0")
s.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_MULTICAST_HOPS, 255)
index = _socket.if_nametoindex("srv0")
s.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_MULTICAST_IF, index)
group = _socket.inet_pton(_socket.AF_INET6, "ff02::2") + struct.pack("@I", index)
s.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_JOIN_GROUP, group)
print("listening", flush=True)
"""

# Answers one router solicitation with an RA of short lifetimes, then exits.
ROUTER = (
    ROUTER_SOCKET
    + """
while s.recv(2048)[0] != codec.ROUTER_SOLICITATION:
    pass
info = codec.PrefixInfo("fd00:99::", 64, codec.PREFIX_ON_LINK | codec.PREFIX_AUTONOMOUS, 5, 3)
ra = codec.RouterAdvertisement(
    lifetime=int(sys.argv[1]), prefixes=[info], dns=["fd00:99::53"], dns_lifetime=4
)
mac = bytes.fromhex(open("/sys/class/net/srv0/address").read().strip().replace(":", ""))
link_local = codec.eui64_address("fe80::", mac)
for _ in range(100):  # an RA comes from the link-local address, once that has passed DAD
    try:
        s.bind((link_local, 0, 0, index))
        s.sendto(ra.encode(), ("ff02::1", 0, 0, index))
        break
    except OSError:
        time.sleep(0.1)
print("sent", flush=True)
"""
)


@pytest.fixture
def pair():
    require_netns()
    pair = NetnsPair()
    yield pair
    pair.close()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def client_state(pair: NetnsPair) -> tuple[set[str], set[str]]:
    """(global IPv6 addresses, IPv6 routes as 'dst via gateway') of the client's eth0."""
    out = pair.client_cmd("ip", "-j", "-6", "addr", "show", "dev", CLIENT_IF).stdout
    addresses = {
        a["local"]
        for link in json.loads(out)
        for a in link["addr_info"]
        if a.get("scope") == "global"
    }
    routes = {
        f"{r['dst']} via {r.get('gateway', '-')}"
        for r in json.loads(pair.client_cmd("ip", "-j", "-6", "route", "show").stdout)
    }
    return addresses, routes


def start_client(pair: NetnsPair, tmp: Path) -> subprocess.Popen:
    log = (tmp / "client.log").open("w")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", pair.client, sys.executable, "-m", "mvirt.pideisn", "dhcp",
         CLIENT_IF, "--no-ipv4", "--no-dhcp6", "--timeout", "300",
         "--resolv-conf", str(tmp / "resolv.conf")],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    pair.processes.append(proc)
    return proc


def start_router(pair: NetnsPair, tmp: Path, lifetime: int) -> None:
    pair.wait_server_dad()
    pair.start_server(sys.executable, "-c", ROUTER, str(lifetime), log=tmp / "router.log")
    wait_for(lambda: "listening" in (tmp / "router.log").read_text(), 20, "the router")


def test_router_lifetimes_expire_in_the_kernel(pair, tmp_path):
    start_router(pair, tmp_path, lifetime=3)
    start_client(pair, tmp_path)
    resolv = tmp_path / "resolv.conf"

    def configured() -> bool:
        addresses, routes = client_state(pair)
        return any(a.startswith("fd00:99::") for a in addresses) and any(
            r.startswith("default via fe80:") for r in routes
        )

    wait_for(configured, 30, "the RA's address and default route")
    _addresses, routes = client_state(pair)
    assert "fd00:99::/64 via -" in routes
    assert "nameserver fd00:99::53" in resolv.read_text()

    wait_for(
        lambda: not any(r.startswith("default") for r in client_state(pair)[1]),
        20,
        "the default route to expire with the router lifetime",
    )
    wait_for(
        lambda: "nameserver fd00:99::53" not in resolv.read_text(),
        20,
        "the RDNSS server to expire",
    )

    def prefix_gone() -> bool:
        addresses, routes = client_state(pair)
        return not any(a.startswith("fd00:99::") for a in addresses) and not any(
            r.startswith("fd00:99::") for r in routes
        )

    wait_for(prefix_gone, 20, "the address and on-link route to expire")
    log = (tmp_path / "client.log").read_text()
    assert "router fe80:" in log and "expired" in log


def test_slaac_address_that_fails_dad_is_reported_and_dropped(pair, tmp_path):
    mac = pair.client_cmd("cat", f"/sys/class/net/{CLIENT_IF}/address").stdout.strip().split(":")
    iid = f"{int(mac[0], 16) ^ 2:02x}{mac[1]}:{mac[2]}ff:fe{mac[3]}:{mac[4]}{mac[5]}"
    taken = str(ipaddress.ip_address(f"fd00:99::{iid}"))  # the canonical form pideisn logs
    pair.server_cmd("ip", "addr", "add", f"{taken}/64", "dev", SERVER_IF, "nodad")
    start_router(pair, tmp_path, lifetime=600)
    start_client(pair, tmp_path)
    log = tmp_path / "client.log"
    wait_for(lambda: "failed DAD" in log.read_text(), 30, "the DAD failure report")
    assert taken in log.read_text()
    wait_for(lambda: taken not in client_state(pair)[0], 10, "the duplicate address to go")


def test_router_solicitation_does_not_wait_for_link_local_dad(pair, tmp_path):
    # Thirty DAD probes keep the link-local address tentative for thirty seconds: the RS goes
    # out from :: meanwhile, and the RA's address and route are applied without waiting.
    pair.client_cmd("sysctl", "-q", f"net.ipv6.conf.{CLIENT_IF}.dad_transmits=30")
    start_router(pair, tmp_path, lifetime=600)
    result = pair.pideisn_dhcp("--no-ipv4", "--no-dhcp6", "--wait", "ra", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    assert "configured eth0 fd00:99::" in result.stdout
    assert any(r.startswith("default via fe80:") for r in client_state(pair)[1])


def test_a_slaac_address_is_a_source_while_its_dad_runs(pair, tmp_path):
    # Thirty DAD probes keep the address tentative for thirty seconds. Optimistic (RFC 4429),
    # as the kernel's own SLAAC makes it, the address is the source for the router's prefix
    # all the same; a tentative one would leave only the link-local address.
    if not Path("/proc/sys/net/ipv6/conf/all/optimistic_dad").exists():
        pytest.skip("the kernel has no CONFIG_IPV6_OPTIMISTIC_DAD")
    pair.client_cmd("sysctl", "-q", f"net.ipv6.conf.{CLIENT_IF}.dad_transmits=30")
    start_router(pair, tmp_path, lifetime=600)
    result = pair.pideisn_dhcp("--no-ipv4", "--no-dhcp6", "--wait", "ra", "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    (address,) = [a for a in client_state(pair)[0] if a.startswith("fd00:99::")]
    route = pair.client_cmd("ip", "-6", "route", "get", "fd00:99::1").stdout
    assert f"src {address} " in route, route
    shown = pair.client_cmd("ip", "-6", "addr", "show", "dev", CLIENT_IF, "tentative").stdout
    assert address in shown, "DAD is over: the test proves nothing"


def test_an_ra_is_received_before_ipv6_on_the_link_is_ready(pair, tmp_path):
    # A NIC whose carrier came up while it was down gets its IPv6 set-up (link-local address,
    # multicast route) only when the kernel's link watcher next runs, up to a second after
    # pideisn set it up. A dormant link stands for that here: IPv6 on it never becomes ready.
    # The RS goes out from ::, and the RA answering it must still be received and applied.
    pair.client_cmd("ip", "link", "set", CLIENT_IF, "mode", "dormant")
    start_router(pair, tmp_path, lifetime=600)
    result = pair.pideisn_dhcp("--no-ipv4", "--no-dhcp6", "--wait", "ra", "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configured eth0 fd00:99::" in result.stdout
    assert any(r.startswith("default via fe80:") for r in client_state(pair)[1])
    shown = pair.client_cmd("ip", "-6", "addr", "show", "dev", CLIENT_IF).stdout
    assert "fe80:" not in shown, "IPv6 on the link became ready: the test proves nothing"


def test_dad_on_configured_addresses_starts_without_the_kernels_random_delay(pair, tmp_path):
    # The kernel delays DAD of an address that is not optimistic (SLAAC's, DHCPv6's) by a
    # random 0 to router_solicitation_delay (1 s); pideisn sets that delay to 0 on the links
    # it manages (the file's name is the kernel's, not its internal field's).
    start_router(pair, tmp_path, lifetime=600)
    result = pair.pideisn_dhcp("--no-ipv4", "--no-dhcp6", "--wait", "ra", "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    delay = pair.client_cmd("cat", f"/proc/sys/net/ipv6/conf/{CLIENT_IF}/router_solicitation_delay")
    assert delay.stdout.strip() == "0"
