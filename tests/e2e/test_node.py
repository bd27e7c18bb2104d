"""The image is an mvirt node: booted under QEMU (TCG, user-mode networking, the API ports
forwarded to the host's loopback) with `mvirt.api=tls` on its command line, its daemons are
driven from the host over mutual TLS.

One machine is shared by the checks of this module. The image is the real pipeline's, with
the API client CA made by the test laid over /etc/mvirt/api-ca.crt (where `mvirt-build genkey`'s
keys/api-ca.crt goes), so the test owns every key it uses.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from mvirt.daemon import tls
from mvirt.proto import log_pb2, log_pb2_grpc, net_pb2, net_pb2_grpc, vmm_pb2, vmm_pb2_grpc
from mvirt_build import api_boot, config
from mvirt_build.stages.uki import sbat_line
from tests.daemon.certs import Authority, make_authority

from .conftest import ROOT, mvirt_build
from .vm import Machine

pytestmark = pytest.mark.e2e
BOOT_TIMEOUT = 600
VMM, LOG, ZFS, NET = 50051, 50052, 50053, 50054
NODE_OUTPUT = ROOT / "build" / "node-test"
FIRMWARE = "/usr/share/mvirt/CLOUDHV.fd"  # a boot file that is on the node


@dataclass
class Node:
    """The booted node, the test's client identity and the node's fingerprint."""

    vm: Machine
    identity: tls.ClientIdentity
    fingerprint: str
    workdir: Path

    def target(self, guest_port: int) -> str:
        return f"127.0.0.1:{self.vm.ports[guest_port]}"

    def channel(self, guest_port: int) -> grpc.Channel:
        channel, seen = tls.connect_pinned(self.target(guest_port), self.identity, self.fingerprint)
        assert seen == self.fingerprint
        return channel


@dataclass
class NodeBuild:
    """The node image built with the test's API client CA, and that CA."""

    uki: Path
    overlay: Path
    authority: Authority
    workdir: Path


@pytest.fixture(scope="module")
def node_build(tmp_path_factory: pytest.TempPathFactory) -> NodeBuild:
    work = tmp_path_factory.mktemp("node")
    authority = make_authority(work / "ca", "e2e API CA")
    overlay = work / "overlay"
    (overlay / "etc/mvirt").mkdir(parents=True)
    (overlay / "etc/mvirt/api-ca.crt").write_bytes(authority.cert_path.read_bytes())
    proc = mvirt_build("--output-dir", str(NODE_OUTPUT), "--extra-tree", str(overlay), "uki")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return NodeBuild(Path(proc.stdout.strip().splitlines()[-1]), overlay, authority, work)


@pytest.fixture(scope="module")
def node(node_build: NodeBuild) -> Iterator[Node]:
    work, authority, built = node_build.workdir, node_build.authority, node_build.uki
    cfg = config.load(ROOT)
    uki = work / "node-api.efi"
    uki.write_bytes(
        api_boot.with_cmdline_word(
            built.read_bytes(), cfg.uki.stub.read_bytes(), sbat_line(), api_boot.API_WORD
        )
    )
    identity = tls.load_client_identity(authority.issue_client(work / "client"))
    vm = Machine(ROOT, uki, work, guest_ports=(VMM, LOG, NET, ZFS))
    try:
        vm.wait_for("pideisn: ready (uptime", BOOT_TIMEOUT)
        fingerprint = api_boot.fingerprint_of(vm.lines)
        assert fingerprint is not None, vm.console()[-4000:]
        yield Node(vm, identity, fingerprint, work)
    finally:
        vm.close()


def call_until_up(node: Node, guest_port: int, call, timeout: float = 120):
    """The first successful answer of `call(channel)`: the forwarded port may take a moment
    after the ready line (the services are ready on loopback first)."""
    deadline = time.monotonic() + timeout
    while True:
        node.vm.pump()
        try:
            with node.channel(guest_port) as channel:
                return call(channel)
        except (OSError, tls.TlsError, grpc.RpcError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)  # polling the node until it answers (bounded by the deadline)


def test_daemons_start_in_order_and_print_one_fingerprint(node: Node):
    console = node.vm.console()
    assert console.index("mvirt-log: ready") < console.index("mvirt-vmm: started")
    assert "mvirt-vmm: ready" in console
    prints = set(re.findall(r"API certificate fingerprint (SHA256:[0-9a-f]{64})", console))
    assert prints == {node.fingerprint}  # one identity for the node


def test_net_runs_and_storage_is_not_started_without_a_pool_disk(node: Node):
    """No mvirt.zfs.disk on this node's command line: neither zfs-fuse nor mvirt-zfs runs
    (its API port refuses) while mvirt-net answers over mutual TLS."""
    console = node.vm.console()
    assert console.index("mvirt-net: ready") < console.index("mvirt-vmm: started")
    for name in ("zfs-pool", "mvirt-zfs"):
        assert f"{name}: not started (no mvirt.zfs.disk on the kernel command line)" in console
        assert f"{name}: started" not in console
    networks = call_until_up(
        node,
        NET,
        lambda ch: net_pb2_grpc.NetServiceStub(ch).ListNetworks(
            net_pb2.ListNetworksRequest(), timeout=60
        ),
    )
    assert list(networks.networks) == []
    with pytest.raises(OSError):  # QEMU accepts on the host and closes: no listener inside
        tls.fetch_server_certificate(node.target(ZFS), node.identity, timeout=30)


def test_system_info_over_mutual_tls(node: Node):
    info = call_until_up(
        node,
        VMM,
        lambda ch: vmm_pb2_grpc.VmServiceStub(ch).GetSystemInfo(
            vmm_pb2.GetSystemInfoRequest(), timeout=60
        ),
    )
    assert info.total_cpus >= 1
    assert info.total_memory_mb > 0


def test_create_list_start_and_the_audit_entry(node: Node):
    def create(channel: grpc.Channel) -> vmm_pb2.Vm:
        config = vmm_pb2.VmConfig(
            vcpus=1, memory_mb=128, kernel=FIRMWARE, boot_mode=vmm_pb2.BOOT_MODE_KERNEL
        )
        return vmm_pb2_grpc.VmServiceStub(channel).CreateVm(
            vmm_pb2.CreateVmRequest(name="e2e-fw", config=config), timeout=60
        )

    vm = call_until_up(node, VMM, create)
    with node.channel(VMM) as channel:
        stub = vmm_pb2_grpc.VmServiceStub(channel)
        listed = stub.ListVms(vmm_pb2.ListVmsRequest(), timeout=60)
        assert vm.id in [v.id for v in listed.vms]
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartVm(vmm_pb2.StartVmRequest(id=vm.id), timeout=60)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # No hypervisor (and no KVM) in this machine: the answer names what is missing.
    assert "cloud-hypervisor" in (refused.value.details() or "")

    def audit(channel: grpc.Channel) -> list[log_pb2.LogEntry]:
        query = log_pb2.QueryRequest(object_id=vm.id, limit=10)
        return list(log_pb2_grpc.LogServiceStub(channel).Query(query, timeout=60))

    deadline = time.monotonic() + 60
    while True:  # the vmm's audit client sends in the background: wait for the entry
        entries = call_until_up(node, LOG, audit)
        if any("created" in e.message for e in entries):
            break
        assert time.monotonic() < deadline, [e.message for e in entries]
        time.sleep(0.5)
    created = next(e for e in entries if "created" in e.message)
    assert created.component == "vmm" and vm.id in created.related_object_ids


def test_client_without_a_certificate_is_refused(node: Node):
    call_until_up(node, VMM, lambda ch: None)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    host, port = tls.split_target(node.target(VMM))
    with (
        socket.create_connection((host, port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=tls.SERVER_NAME) as conn,
    ):
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try:
            answer = conn.recv(1)
        except (ssl.SSLError, ConnectionResetError):
            answer = b""
    assert answer == b""


def test_client_with_a_certificate_of_another_ca_is_refused(node: Node):
    call_until_up(node, VMM, lambda ch: None)
    stranger_dir = make_authority(node.workdir / "other-ca", "another CA").issue_client(
        node.workdir / "stranger"
    )
    stranger = tls.load_client_identity(stranger_dir)
    with pytest.raises(tls.ServerRefusedError):
        tls.fetch_server_certificate(node.target(VMM), stranger, timeout=30)


def test_acpi_power_button_stops_the_daemons_cleanly(node: Node):
    """Last in the module (tests run in file order): it ends the shared machine."""
    mark = len(node.vm.lines)
    node.vm.qmp("system_powerdown")
    status = node.vm.wait_exit(180)
    console = node.vm.console(mark)
    assert status == 0, console
    assert "ACPI power button: power off" in console
    assert "mvirt-vmm: stopped (exit 0)" in console
    assert "mvirt-net: stopped (exit 0)" in console
    assert "mvirt-log: stopped (exit 0)" in console
    assert console.index("mvirt-vmm: stopped") < console.index("mvirt-net: stopped")
    assert console.index("mvirt-net: stopped") < console.index("mvirt-log: stopped")
    assert console.index("services stopped") < console.index("powering off")


def test_the_iso_boots_the_node(node_build: NodeBuild, tmp_path: Path):
    """The same node image in the hybrid ISO, booted from a CD: the daemons come up (on
    loopback only: the ISO carries the UKI as built, without mvirt.api=tls) and stop cleanly."""
    proc = mvirt_build(
        "--output-dir", str(NODE_OUTPUT), "--extra-tree", str(node_build.overlay), "iso"
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    iso = NODE_OUTPUT / "mvirt-uos.iso"
    vm = Machine(ROOT, node_build.uki, tmp_path, guest_ports=(VMM,), iso=iso)
    try:
        vm.wait_for("pideisn: mvirt-vmm: ready", BOOT_TIMEOUT)
        assert "mvirt-log: ready" in vm.console()
        mark = len(vm.lines)
        vm.qmp("system_powerdown")
        assert vm.wait_exit(180) == 0, vm.console(mark)
        assert "mvirt-vmm: stopped (exit 0)" in vm.console(mark)
    finally:
        vm.close()
