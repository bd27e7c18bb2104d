"""Two network namespaces joined by a veth pair, for running clients against real servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.namespaces import namespace_name

DNSMASQ = "/usr/sbin/dnsmasq"
SERVER_IF = "srv0"
CLIENT_IF = "eth0"


def require_netns() -> None:
    """Skip unless running as root with `ip` available (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip to create network namespaces")


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a command, capturing text output."""
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


class NetnsPair:
    """`server` and `client` namespaces; the client side's interface is called eth0."""

    def __init__(self) -> None:
        self.server = namespace_name("server")
        self.client = namespace_name("client")
        self.processes: list[subprocess.Popen] = []
        run("ip", "netns", "add", self.server)
        run("ip", "netns", "add", self.client)
        run(
            "ip", "link", "add", SERVER_IF, "netns", self.server, "type", "veth",
            "peer", "name", CLIENT_IF, "netns", self.client,
        )  # fmt: skip
        self.server_cmd("ip", "link", "set", "lo", "up")
        self.server_cmd("ip", "link", "set", SERVER_IF, "up")

    def server_cmd(self, *argv: str) -> subprocess.CompletedProcess:
        """Run in the server namespace."""
        return run("ip", "netns", "exec", self.server, *argv)

    def client_cmd(self, *argv: str, check: bool = True, timeout: float = 60):
        """Run in the client namespace."""
        return run("ip", "netns", "exec", self.client, *argv, check=check, timeout=timeout)

    def start_server(self, *argv: str, log: Path) -> subprocess.Popen:
        """Start a long-running server in the server namespace, output to `log`."""
        out = log.open("w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.server, *argv], stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        self.processes.append(proc)
        return proc

    def start_dnsmasq(self, tmp: Path, *options: str) -> subprocess.Popen:
        """dnsmasq answering DHCP only (no DNS), in the foreground, logging DHCP."""
        if not os.path.exists(DNSMASQ):
            pytest.skip("needs dnsmasq (Debian package dnsmasq-base)")
        return self.start_server(
            DNSMASQ, "--no-daemon", "--conf-file=/dev/null", f"--interface={SERVER_IF}",
            "--bind-interfaces", "--port=0", "--no-resolv", "--no-hosts", "--log-dhcp",
            f"--dhcp-leasefile={tmp / 'leases'}", f"--pid-file={tmp / 'dnsmasq.pid'}",
            *options, log=tmp / "dnsmasq.log",
        )  # fmt: skip

    def wait_server_dad(self) -> None:
        """Wait until the server's IPv6 addresses are usable (DAD done)."""
        for _ in range(100):
            out = self.server_cmd("ip", "-6", "addr", "show", "dev", SERVER_IF, "tentative")
            if not out.stdout.strip():
                return
            time.sleep(0.1)

    def pideisn_dhcp(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`pideisn dhcp eth0 --exit ...` in the client namespace."""
        return self.client_cmd(
            sys.executable, "-m", "mvirt.pideisn", "dhcp", CLIENT_IF, "--exit", *args,
            check=False, timeout=timeout,
        )  # fmt: skip

    def reachable(self, address: str, tmp: Path, port: int = 7777) -> bool:
        """True if a TCP connection from the client reaches a listener on the server side."""
        listener = self.start_server(
            sys.executable, "-c",
            "import socket, sys; s = socket.socket(socket.AF_INET6); "
            "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); "
            f"s.bind(('::', {port})); s.listen(); print('up', flush=True); "
            "c, _ = s.accept(); c.sendall(b'hi'); c.close()",
            log=tmp / "listener.log",
        )  # fmt: skip
        for _ in range(100):
            if (tmp / "listener.log").read_text().startswith("up"):
                break
            time.sleep(0.05)
        code = (
            "import socket, sys; "
            f"print(socket.create_connection(({address!r}, {port}), timeout=5).recv(2).decode())"
        )
        result = self.client_cmd(sys.executable, "-c", code, check=False)
        listener.wait(5)
        return result.stdout.strip() == "hi"

    def client_addresses(self) -> list[tuple[str, int]]:
        """Global addresses on the client's eth0."""
        out = self.client_cmd("ip", "-j", "addr", "show", "dev", CLIENT_IF).stdout
        return [
            (a["local"], a["prefixlen"])
            for link in json.loads(out)
            for a in link["addr_info"]
            if a.get("scope") == "global"
        ]

    def client_routes(self, family: str) -> list[dict]:
        """The client's main routing table, as ip's JSON."""
        return json.loads(self.client_cmd("ip", "-j", family, "route", "show").stdout)

    def close(self) -> None:
        """Stop servers and delete both namespaces."""
        for proc in self.processes:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        run("ip", "netns", "del", self.client, check=False)
        run("ip", "netns", "del", self.server, check=False)
