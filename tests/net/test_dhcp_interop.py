"""Independent clients against the daemon's DHCPv4, DHCPv6 and RA servers: busybox udhcpc,
ISC dhclient -6 and the Linux kernel's own RA handling get what the API reports."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvirt.proto import net_pb2
from tests.net.conftest import NetDaemon
from tests.net.guest import NsGuest
from tests.net.kernel_state import counter

pytestmark = pytest.mark.slow

ENV_SCRIPT = """#!/bin/sh
# Records what the DHCP client hands its script, one KEY=value per line.
[ "$1" = bound ] || [ "$reason" = BOUND6 ] || exit 0
env > "{out}.tmp" && mv "{out}.tmp" "{out}"
"""


@pytest.fixture
def guests() -> Iterator[list[NsGuest]]:
    made: list[NsGuest] = []
    yield made
    for guest in made:
        guest.close()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def setup(net: NetDaemon, guests: list[NsGuest]) -> tuple[net_pb2.Nic, NsGuest]:
    net.stub.CreateNetwork(
        net_pb2.CreateNetworkRequest(
            name="prod",
            ipv4_subnet="10.200.0.0/24",
            ipv6_prefix="fd00:200::/64",
            dns_servers=["10.200.0.53", "fd00:200::53"],
            ntp_servers=["10.200.0.123"],
        )
    )
    net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))  # takes .1, so ours is .2
    nic = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    guest = NsGuest(net.netns.name, nic.tap_name, nic.mac_address, configure=False)
    guests.append(guest)
    return nic, guest


def script(tmp_path: Path, name: str) -> tuple[Path, Path]:
    out = tmp_path / f"{name}.env"
    path = tmp_path / f"{name}.sh"
    path.write_text(ENV_SCRIPT.format(out=out))
    path.chmod(0o755)
    return path, out


def test_udhcpc_gets_the_nic_address_and_gateway_routes(net, guests, tmp_path) -> None:
    nic, guest = setup(net, guests)
    hook, out = script(tmp_path, "udhcpc")
    guest.ns.run(
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-f",
        "-q",
        "-n",
        "-t",
        "10",
        "-T",
        "1",
        "-s",
        str(hook),
        "-O",
        "staticroutes",
        "-O",
        "ntpsrv",
        timeout=60,
    )
    env = read_env(out)
    assert env["ip"] == nic.ipv4_address == "10.200.0.2"
    assert env["subnet"] == "255.255.255.255"
    assert env["router"] == "169.254.0.1"
    assert env["dns"].split() == ["10.200.0.53"]
    assert env["ntpsrv"].split() == ["10.200.0.123"]
    assert env["staticroutes"].split() == ["169.254.0.1/32", "0.0.0.0", "0.0.0.0/0", "169.254.0.1"]
    assert int(env["lease"]) == 0xFFFFFFFF
    # The server's own broadcasts, looped back by the host, are not counted as spoofing.
    assert counter(net.netns, f"antispoof ipv4 {nic.id}") == 0


def test_dhclient6_gets_the_nic_address(net, guests, tmp_path) -> None:
    nic, guest = setup(net, guests)
    wait_for(
        lambda: (
            "tentative" not in guest.ns.run("ip", "-6", "addr", "show", "eth0").stdout
            and "fe80" in guest.ns.run("ip", "-6", "addr", "show", "eth0").stdout
        ),
        what="the guest's link-local address",
    )
    hook, out = script(tmp_path, "dhclient6")
    with open(tmp_path / "dhclient.log", "wb") as log:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                guest.ns.name,
                "dhclient",
                "-6",
                "-d",
                "-v",
                "-lf",
                str(tmp_path / "leases6"),
                "-pf",
                str(tmp_path / "dhclient6.pid"),
                "-sf",
                str(hook),
                "eth0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(out.exists, 60, "dhclient -6 to bind")
    finally:
        proc.kill()
        proc.wait(10)
    env = read_env(out)
    assert env["new_ip6_address"] == nic.ipv6_address == "fd00:200::2"
    assert env["new_dhcp6_name_servers"].split() == ["fd00:200::53"]


def test_router_advertisement_makes_fe80_1_the_default_router(net, guests) -> None:
    _, guest = setup(net, guests)
    guest.ns.run("sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=2")

    def default_routes() -> list[dict]:
        out = guest.ns.run("ip", "-j", "-6", "route", "show", "default").stdout
        return [r for r in json.loads(out) if r.get("gateway") == "fe80::1"]

    # The kernel solicits when the link comes up; the answer is immediate.
    routes = wait_for(default_routes, 30, "a default route from the RA")
    assert routes[0]["dev"] == "eth0"


def udhcpc(guest: NsGuest, hook: Path, tries: int) -> subprocess.CompletedProcess[str]:
    return guest.ns.run(
        "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", str(tries), "-T", "1",
        "-s", str(hook), check=False, timeout=60,
    )  # fmt: skip


def test_requests_from_another_mac_get_no_lease(net, guests, tmp_path) -> None:
    nic, guest = setup(net, guests)
    guest.ns.run("ip", "link", "set", "eth0", "address", "02:00:00:00:99:99")
    hook, out = script(tmp_path, "udhcpc")
    # DHCPv4: udhcpc (chaddr and link-layer source the other MAC) gives up without a lease.
    assert udhcpc(guest, hook, tries=3).returncode != 0
    assert not out.exists()
    dropped = counter(net.netns, f"dhcp from another mac {nic.id}")
    assert dropped >= 3
    # DHCPv6: dhclient's SOLICITs are dropped too, and nothing binds.
    wait_for(
        lambda: "tentative" not in guest.ns.run("ip", "-6", "addr", "show", "eth0").stdout,
        what="the guest's link-local address",
    )
    hook6, out6 = script(tmp_path, "dhclient6")
    with open(tmp_path / "dhclient.log", "wb") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", guest.ns.name, "dhclient", "-6", "-d", "-v",
             "-lf", str(tmp_path / "leases6"), "-pf", str(tmp_path / "dhclient6.pid"),
             "-sf", str(hook6), "eth0"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(
            lambda: counter(net.netns, f"dhcp from another mac {nic.id}") >= dropped + 2,
            60,
            "two SOLICITs dropped",
        )
    finally:
        proc.kill()
        proc.wait(10)
    assert not out6.exists()
    assert "ADVERTISE" not in (tmp_path / "dhclient.log").read_text()
    # The NIC's own MAC gets its lease at once on the same link.
    guest.ns.run("ip", "link", "set", "eth0", "address", nic.mac_address)
    assert udhcpc(guest, hook, tries=10).returncode == 0
    assert read_env(out)["ip"] == nic.ipv4_address
