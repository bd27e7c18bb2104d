"""pideisn as PID 1 of its own PID/mount/UTS namespaces in a network namespace with dnsmasq:
the boot (network, services, ready line), reaping of orphans, restart of a killed service,
and ordered shutdown ending in reboot(2) (which, in a PID namespace, ends the namespace's
init with SIGINT for power off and SIGHUP for reboot)."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from .netns import NetnsPair, require_netns
from .pid1 import Pid1, require_unshare, state_dir, zombies_of

pytestmark = pytest.mark.slow

SERVICE = """
import os, socket
s = socket.create_server(("", 8080), family=socket.AF_INET6, dualstack_ipv6=True)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    request = c.recv(64)
    c.sendall(b"pid %d\\n" % os.getpid())
    c.close()
    if request.startswith(b"exit"):
        os._exit(3)
"""

ORPHANS = """
import os, time
for _ in range(3):
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(0.2)
            os._exit(0)
        os._exit(0)
time.sleep(3600)
"""


def services_toml(python: str) -> str:
    return f"""
[services.web]
command = [{python!r}, "-c", '''{SERVICE}''']
restart = "always"
restart_delay = 0.2
ready = {{ tcp = 8080 }}
stop_timeout = 3

[services.orphans]
command = [{python!r}, "-c", '''{ORPHANS}''']
after = ["web"]
"""


def ask(pair: NetnsPair, address: str, message: str) -> str:
    code = (
        f"import socket; s = socket.create_connection(({address!r}, 8080), timeout=5); "
        f"s.sendall({message.encode()!r}); print(s.recv(64).decode().strip())"
    )
    return pair.server_cmd(sys.executable, "-c", code).stdout.strip()


@pytest.fixture
def pair():
    require_netns()
    require_unshare()
    pair = NetnsPair()
    yield pair
    pair.close()


def test_boot_serve_restart_reap_and_power_off(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "192.168.77.1/24", "dev", "srv0")
    pair.server_cmd("ip", "addr", "add", "fd00:88::1/64", "dev", "srv0")
    pair.wait_server_dad()
    pair.start_dnsmasq(
        tmp_path,
        "--dhcp-range=192.168.77.10,192.168.77.50,255.255.255.0,5m",
        "--dhcp-option=option:router,192.168.77.1",
        "--dhcp-option=option:dns-server,192.168.77.53",
        "--enable-ra",
        "--dhcp-range=fd00:88::,ra-only,64,5m",
    )
    directory = state_dir()
    (directory / "services.toml").write_text(services_toml(sys.executable))
    cmdline = (
        f"console=ttyS0 mvirt.hostname=pideisn-test mvirt.services={directory}/services.toml "
        "mvirt.net.timeout=20 mvirt.net.dhcp6=0"
    )
    init = Pid1(pair.client, directory, cmdline)
    try:
        ready = init.wait_for("pideisn: ready (uptime ", 60)
        address = ready.split("eth0 ", 1)[1].split("/24")[0]
        assert address.startswith("192.168.77.")
        assert "fd00:88::" in ready  # the SLAAC address from dnsmasq's RA
        init.wait_for("hostname pideisn-test")
        assert "nameserver 192.168.77.53" in (directory / "resolv.conf").read_text()
        assert init.lines.index(init.wait_for("web: ready")) < init.lines.index(ready)

        first = ask(pair, address, "hello")
        assert first.startswith("pid ")
        mark = len(init.lines)
        assert ask(pair, address, "exit") == first
        init.wait_for("web: exited (exit 3)", 10, start=mark)
        init.wait_for("web: ready again", 20, start=mark)
        second = ask(pair, address, "hello")
        assert second.startswith("pid ") and second != first

        pid1 = init.host_pid()
        assert zombies_of(pid1) == []  # the orphaned grandchildren were reaped

        mark = len(init.lines)
        os.kill(pid1, signal.SIGUSR2)
        status = init.wait_exit(30)
        console = "\n".join(init.lines[mark:])
        assert "SIGUSR2: power off" in console
        assert console.index("orphans: stopping") < console.index("web: stopping")
        assert "web: stopped" in console and "services stopped" in console
        assert "filesystems synced" in console and "powering off" in console
        assert status == -signal.SIGINT, console  # reboot(2) POWER_OFF in a PID namespace
    finally:
        init.close()


def test_sigterm_reboots_without_network(tmp_path):
    require_unshare()
    directory = state_dir()
    init = Pid1(None, directory, "mvirt.net=0 mvirt.hostname=pideisn-reboot")
    try:
        init.wait_for("pideisn: ready (uptime ", 30)
        assert "network disabled" in "\n".join(init.lines)
        os.kill(init.host_pid(), signal.SIGTERM)
        status = init.wait_exit(30)
        console = "\n".join(init.lines)
        assert "SIGTERM: reboot" in console and "rebooting" in console
        assert status == -signal.SIGHUP  # reboot(2) AUTOBOOT in a PID namespace
    finally:
        init.close()


def test_command_line_with_a_non_utf8_byte_boots_and_still_powers_off(tmp_path):
    require_unshare()
    directory = state_dir()
    init = Pid1(None, directory, b"caf\xe9 mvirt.net=0 mvirt.hostname=pideisn-bytes")
    try:
        init.wait_for("pideisn: ready (uptime ", 30)
        console = "\n".join(init.lines)
        assert "hostname pideisn-bytes" in console
        assert "failed" not in console and "emergency" not in console
        os.kill(init.host_pid(), signal.SIGUSR2)
        status = init.wait_exit(30)
        assert status == -signal.SIGINT, "\n".join(init.lines)
    finally:
        init.close()


def test_network_without_a_router_does_not_hold_the_boot_for_the_timeout(pair, tmp_path):
    pair.server_cmd("ip", "addr", "add", "192.168.77.1/24", "dev", "srv0")
    pair.start_dnsmasq(tmp_path, "--dhcp-range=192.168.77.10,192.168.77.50,255.255.255.0,5m")
    directory = state_dir()
    init = Pid1(pair.client, directory, "mvirt.net.timeout=90 mvirt.net.dhcp6=0")
    try:
        # Well before the 90 s network timeout: the RA is not waited for once DHCPv4 is in.
        ready = init.wait_for("pideisn: ready (uptime ", 45)
        assert "eth0 192.168.77." in ready
        assert "no router answered" in "\n".join(init.lines)
        os.kill(init.host_pid(), signal.SIGUSR2)
        assert init.wait_exit(30) == -signal.SIGINT
    finally:
        init.close()
