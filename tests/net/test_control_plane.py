"""The DHCP/RA servers follow the database: a changed network is served at once, a restart
(even after SIGKILL) serves the existing TAPs again, and deleted NICs leave no sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mvirt.proto import net_pb2
from tests.net.guest import NsGuest
from tests.net.test_dhcp_interop import read_env, script

pytestmark = pytest.mark.slow


def udhcpc(guest: NsGuest, hook: Path) -> None:
    guest.ns.run(
        "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1",
        "-s", str(hook), timeout=60,
    )  # fmt: skip


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def test_dns_change_and_restart_are_served(start_net, tmp_path) -> None:
    net = start_net()
    made = net.stub.CreateNetwork(
        net_pb2.CreateNetworkRequest(
            name="prod", ipv4_subnet="10.200.0.0/24", dns_servers=["10.200.0.53"]
        )
    )
    nic = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    guest = NsGuest(net.netns.name, nic.tap_name, nic.mac_address, configure=False)
    try:
        hook, out = script(tmp_path, "first")
        udhcpc(guest, hook)
        assert read_env(out)["dns"] == "10.200.0.53"

        net.stub.UpdateNetwork(net_pb2.UpdateNetworkRequest(id=made.id, dns_servers=["1.1.1.1"]))
        hook, out = script(tmp_path, "updated")
        udhcpc(guest, hook)
        assert read_env(out)["dns"] == "1.1.1.1"

        net.kill()
        start_net(data_dir=net.data_dir)
        hook, out = script(tmp_path, "restarted")
        udhcpc(guest, hook)
        env = read_env(out)
        assert (env["ip"], env["dns"]) == (nic.ipv4_address, "1.1.1.1")
    finally:
        guest.close()


def test_deleted_nics_leave_no_sockets_behind(net) -> None:
    net.stub.CreateNetwork(net_pb2.CreateNetworkRequest(name="prod", ipv4_subnet="10.9.0.0/24"))
    assert net.proc is not None
    first = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    baseline = open_fds(net.proc.pid)
    made = [net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod")) for _ in range(5)]
    assert open_fds(net.proc.pid) >= baseline + 15  # DHCPv4, DHCPv6 and RA per TAP
    for nic in made:
        net.stub.DeleteNic(net_pb2.DeleteNicRequest(id=nic.id))
    assert open_fds(net.proc.pid) == baseline
    assert net.stub.GetNic(net_pb2.GetNicRequest(id=first.id)).id == first.id
