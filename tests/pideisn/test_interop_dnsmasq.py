"""The DHCPv4, DHCPv6 and SLAAC clients against an independent server: dnsmasq, in network
namespaces joined by a veth pair (needs root; skipped otherwise)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time

import pytest

from .netns import NetnsPair, require_netns

pytestmark = pytest.mark.slow


@pytest.fixture
def pair():
    require_netns()
    pair = NetnsPair()
    yield pair
    pair.close()


def test_dhcpv4_address_router_dns_and_classless_routes(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "192.168.77.1/24", "dev", "srv0")
    pair.start_dnsmasq(
        tmp_path,
        "--dhcp-range=192.168.77.10,192.168.77.50,255.255.255.0,5m",
        "--dhcp-option=option:router,192.168.77.1",
        "--dhcp-option=option:dns-server,192.168.77.53,192.168.77.54",
        "--dhcp-option=option:domain-name,lab.example",
        "--dhcp-option=121,10.99.0.0/16,192.168.77.1,0.0.0.0/0,192.168.77.1",
    )
    resolv = tmp_path / "resolv.conf"
    result = pair.pideisn_dhcp("--no-ipv6", "--resolv-conf", str(resolv))
    assert result.returncode == 0, result.stderr
    addresses = pair.client_addresses()
    assert len(addresses) == 1
    address, prefixlen = addresses[0]
    assert prefixlen == 24 and address.startswith("192.168.77.")
    assert 10 <= int(address.rsplit(".", 1)[1]) <= 50
    assert f"configured eth0 {address}/24" in result.stdout
    routes = {(r["dst"], r.get("gateway")) for r in pair.client_routes("-4")}
    assert ("default", "192.168.77.1") in routes
    assert ("10.99.0.0/16", "192.168.77.1") in routes
    assert resolv.read_text().splitlines()[1:] == [
        "search lab.example",
        "nameserver 192.168.77.53",
        "nameserver 192.168.77.54",
    ]
    leases = (tmp_path / "leases").read_text()
    assert address in leases  # the server agrees on who holds the address


def test_dhcpv4_single_host_lease_gets_on_link_route_to_gateway(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "192.168.77.1/24", "dev", "srv0")
    pair.start_dnsmasq(
        tmp_path,
        "--dhcp-range=192.168.77.10,192.168.77.50,255.255.255.0,5m",
        "--dhcp-option=option:netmask,255.255.255.255",
        "--dhcp-option=option:router,192.168.77.1",
    )
    result = pair.pideisn_dhcp("--no-ipv6")
    assert result.returncode == 0, result.stderr
    [(_address, prefixlen)] = pair.client_addresses()
    assert prefixlen == 32
    routes = {(r["dst"], r.get("gateway")) for r in pair.client_routes("-4")}
    assert ("192.168.77.1", None) in routes  # on-link host route to the gateway
    assert ("default", "192.168.77.1") in routes
    assert pair.reachable("192.168.77.1", tmp_path)


def test_dhcpv6_address_dns_and_slaac_from_router_advertisements(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "fd00:77::1/64", "dev", "srv0")
    pair.server_cmd("ip", "addr", "add", "fd00:88::1/64", "dev", "srv0")
    pair.wait_server_dad()
    pair.start_dnsmasq(
        tmp_path,
        "--enable-ra",
        "--dhcp-range=fd00:77::100,fd00:77::1ff,64,5m",
        "--dhcp-range=fd00:88::,ra-only,64,5m",
        "--dhcp-option=option6:dns-server,[fd00:77::53]",
    )
    resolv = tmp_path / "resolv.conf"
    result = pair.pideisn_dhcp("--no-ipv4", "--wait", "ra,dhcp6", "--resolv-conf", str(resolv))
    assert result.returncode == 0, result.stderr
    mac = pair.client_cmd("cat", "/sys/class/net/eth0/address").stdout.strip().split(":")
    interface_id = f"{int(mac[0], 16) ^ 2:02x}{mac[1]}:{mac[2]}ff:fe{mac[3]}:{mac[4]}{mac[5]}"
    addresses = dict(pair.client_addresses())
    slaac = [a for a in addresses if a.startswith("fd00:88::")]
    dhcp6 = [a for a in addresses if a.startswith("fd00:77::")]
    assert slaac and addresses[slaac[0]] == 64
    # The SLAAC address is the prefix plus the modified EUI-64 of the MAC.
    assert ipaddress.ip_address(slaac[0]) == ipaddress.ip_address(f"fd00:88::{interface_id}")
    assert dhcp6 and addresses[dhcp6[0]] == 128
    assert 0x100 <= int(dhcp6[0].rsplit(":", 1)[1], 16) <= 0x1FF
    routes = pair.client_routes("-6")
    default = [r for r in routes if r["dst"] == "default"]
    assert default and default[0]["gateway"].startswith("fe80::")
    assert "nameserver fd00:77::53" in resolv.read_text()
    assert pair.reachable("fd00:88::1", tmp_path)


def test_no_server_degrades_with_a_timeout(pair):
    result = pair.pideisn_dhcp("--no-ipv6", "--timeout", "3")
    assert result.returncode == 1
    assert "no DHCPv4 lease yet" in result.stderr


def test_dhcpv4_domain_injection_never_reaches_resolv_conf_and_mtu_is_applied(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "192.168.77.1/24", "dev", "srv0")
    # dnsmasq turns \n into a newline only in quoted strings of a configuration file.
    conf = tmp_path / "inject.conf"
    conf.write_text('dhcp-option=15,"lab\\nnameserver 6.6.6.6"\n')
    pair.start_dnsmasq(
        tmp_path,
        "--dhcp-range=192.168.77.10,192.168.77.50,255.255.255.0,5m",
        "--dhcp-option=option:dns-server,192.168.77.53",
        f"--conf-file={conf}",
        "--dhcp-option=26,1400",
    )
    resolv = tmp_path / "resolv.conf"
    result = pair.pideisn_dhcp("--no-ipv6", "--resolv-conf", str(resolv))
    assert result.returncode == 0, result.stderr
    assert resolv.read_text().splitlines()[1:] == ["nameserver 192.168.77.53"]
    link = pair.client_cmd("cat", "/sys/class/net/eth0/mtu").stdout.strip()
    assert link == "1400"


def test_router_with_only_the_o_flag_gets_an_information_request(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "fd00:88::1/64", "dev", "srv0")
    pair.wait_server_dad()
    pair.start_dnsmasq(
        tmp_path,
        "--enable-ra",
        "--dhcp-range=fd00:88::,ra-stateless,64,5m",
        "--dhcp-option=option6:dns-server,[fd00:88::53]",
    )
    resolv = tmp_path / "resolv.conf"
    client = subprocess.Popen(
        ["ip", "netns", "exec", pair.client, sys.executable, "-m", "mvirt.pideisn", "dhcp",
         "eth0", "--no-ipv4", "--resolv-conf", str(resolv)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if resolv.exists() and "nameserver fd00:88::53" in resolv.read_text():
                break
            time.sleep(0.1)
        assert resolv.exists() and "nameserver fd00:88::53" in resolv.read_text()
    finally:
        client.terminate()
        client.wait(10)
