"""DHCPv6 prefix delegation (IA_PD) against ISC dhcpd.

dnsmasq, the reference server of the other interop tests, cannot delegate prefixes (it has no
IA_PD support), so delegation is tested against ISC dhcpd 4.4 from Debian's isc-dhcp-server,
an independent implementation of RFC 8415's IA_PD. Needs root; skipped without dhcpd.
"""

from __future__ import annotations

import os

import pytest

from .netns import SERVER_IF, NetnsPair, require_netns

pytestmark = pytest.mark.slow
DHCPD = "/usr/sbin/dhcpd"

CONFIG = """
default-lease-time 600;
max-lease-time 900;
option dhcp6.name-servers fd00:99::53;
subnet6 fd00:99::/64 {
  range6 fd00:99::1000 fd00:99::1fff;
  prefix6 fd00:99:100:: fd00:99:1ff:: /56;
}
"""


@pytest.fixture
def pair():
    require_netns()
    if not os.path.exists(DHCPD):
        pytest.skip("needs ISC dhcpd (Debian package isc-dhcp-server) for prefix delegation")
    pair = NetnsPair()
    yield pair
    pair.close()


def test_delegated_prefix_lands_in_the_pool_with_an_address(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "fd00:99::1/64", "dev", SERVER_IF)
    pair.wait_server_dad()
    (tmp_path / "dhcpd6.conf").write_text(CONFIG)
    (tmp_path / "dhcpd6.leases").write_text("")
    pair.start_server(
        DHCPD, "-6", "-f", "-d", "-cf", str(tmp_path / "dhcpd6.conf"),
        "-lf", str(tmp_path / "dhcpd6.leases"), "-pf", str(tmp_path / "dhcpd6.pid"), SERVER_IF,
        log=tmp_path / "dhcpd.log",
    )  # fmt: skip
    pool = tmp_path / "prefixes"
    resolv = tmp_path / "resolv.conf"
    result = pair.pideisn_dhcp(
        "--no-ipv4",
        "--wait",
        "dhcp6",
        "--prefix-pool",
        str(pool),
        "--resolv-conf",
        str(resolv),
    )
    assert result.returncode == 0, result.stderr + (tmp_path / "dhcpd.log").read_text()
    [line] = pool.read_text().splitlines()
    prefix, valid, preferred = line.split()
    assert prefix.startswith("fd00:99:1") and prefix.endswith("::/56")
    assert int(valid) > 0 and int(preferred) > 0
    addresses = dict(pair.client_addresses())
    [address] = [a for a in addresses if a.startswith("fd00:99::")]
    assert addresses[address] == 128
    assert 0x1000 <= int(address.rsplit(":", 1)[1], 16) <= 0x1FFF
    assert "nameserver fd00:99::53" in resolv.read_text()
    # The server recorded the same delegation.
    leases = (tmp_path / "dhcpd6.leases").read_text()
    assert f"iaprefix {prefix}" in leases
