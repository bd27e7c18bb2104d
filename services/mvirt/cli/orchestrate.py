"""Orchestrated create and delete across daemons: ``mvirt create --template --network``
clones a volume (mvirt-zfs), creates a NIC (mvirt-net), then the VM with both (mvirt-vmm);
``mvirt delete --with-volumes --with-nics`` removes what create made.

A create is a list of steps, each with its undo. When a step fails, the steps before it are
undone newest first, so no daemon keeps anything of a create that failed; an undo that fails
too is reported with what is left and how to remove it. Every step is written to the audit
log (mvirt-log, component ``cli``) with the ids of the objects it touched; when mvirt-log is
not reachable the CLI says so on stderr and goes on (the daemons audit their own side).

A daemon is dialled only when an option needs it: without ``--template`` mvirt-zfs may be
absent, without ``--network`` mvirt-net.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click
import grpc

from mvirt.cli.exit_codes import CliError, ExitCode
from mvirt.cli.output import safe
from mvirt.cli.rpc import connect, open_channel
from mvirt.proto import (
    log_pb2,
    log_pb2_grpc,
    net_pb2,
    net_pb2_grpc,
    vmm_pb2,
    vmm_pb2_grpc,
    zfs_pb2,
    zfs_pb2_grpc,
)

COMPONENT = "cli"
_SIZE = re.compile(r"^(\d+)([KMGT]?)(i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: str) -> int:
    """Bytes for ``20G``, ``512M``, ``20GiB`` or a plain number of bytes (binary units)."""
    match = _SIZE.match(value.strip())
    if match is None or int(match[1]) == 0:
        raise click.BadParameter(
            f"{value!r} is not a size: use a number with K, M, G or T (20G)",
            param_hint="--disk-size",
        )
    return int(match[1]) * _UNITS[match[2].upper()]


@dataclass
class Audit:
    """Audit entries for one orchestration, sent to mvirt-log as they happen."""

    stub: log_pb2_grpc.LogServiceStub | None
    warned: bool = False

    def record(self, message: str, *ids: str, level: int = log_pb2.AUDIT) -> None:
        """Writes one entry related to ``ids``; a missing mvirt-log is reported once."""
        if self.stub is None:
            return
        entry = log_pb2.LogEntry(
            message=message,
            level=level,  # type: ignore[arg-type]
            component=COMPONENT,
            related_object_ids=[i for i in ids if i],
        )
        try:
            self.stub.Log(log_pb2.LogRequest(entry=entry))
        except grpc.RpcError as exc:
            if not self.warned:
                self.warned = True
                click.echo(
                    f"mvirt: warning: audit entries not written ({exc.code().name} from "
                    "mvirt-log); the daemons still audit their own steps",
                    err=True,
                )


@contextlib.contextmanager
def audit_log() -> Iterator[Audit]:
    """An :class:`Audit` on mvirt-log (``--log-server``)."""
    try:
        _target, channel = open_channel(None, "--log-server", "mvirt-log")
    except CliError as exc:
        if exc.exit_code != ExitCode.UNAVAILABLE:
            raise
        click.echo(f"mvirt: warning: audit entries not written: {exc.message}", err=True)
        yield Audit(None)
        return
    with channel:
        yield Audit(log_pb2_grpc.LogServiceStub(channel))


@dataclass
class Undo:
    """How to take back one step."""

    what: str
    action: Callable[[], Any]
    ids: tuple[str, ...]
    by_hand: str


@dataclass
class Orchestration:
    """Steps done so far and their undos; :meth:`rollback` takes them back newest first."""

    name: str
    audit: Audit
    undos: list[Undo] = field(default_factory=list)

    def done(self, message: str, undo: Undo | None, *ids: str) -> None:
        """Records a finished step (audited with ``ids``)."""
        self.audit.record(f"create {self.name}: {message}", *ids)
        if undo is not None:
            self.undos.append(undo)

    def rollback(self, cause: str) -> list[str]:
        """Undoes every step; returns what could not be undone, as instructions."""
        left = []
        for undo in reversed(self.undos):
            try:
                undo.action()
            except (grpc.RpcError, CliError) as exc:
                detail = exc.details() if isinstance(exc, grpc.RpcError) else exc.message
                self.audit.record(
                    f"create {self.name}: could not undo: {undo.what} ({detail})",
                    *undo.ids,
                    level=log_pb2.ERROR,
                )
                left.append(f"{undo.what} is left: {undo.by_hand}")
                continue
            self.audit.record(f"create {self.name}: undone after {cause}: {undo.what}", *undo.ids)
        self.undos.clear()
        return left


def _zfs_call(call: Callable[[zfs_pb2_grpc.ZfsServiceStub], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with connect(None, "--zfs-server", "mvirt-zfs") as channel:
            return call(zfs_pb2_grpc.ZfsServiceStub(channel))

    return run


def _net_call(call: Callable[[net_pb2_grpc.NetServiceStub], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with connect(None, "--net-server", "mvirt-net") as channel:
            return call(net_pb2_grpc.NetServiceStub(channel))

    return run


def clone_volume(run: Orchestration, template: str, size: int | None) -> vmm_pb2.DiskConfig:
    """Step 1: a volume ``<name>-root`` cloned from ``template``; its disk for the VM."""
    request = zfs_pb2.CloneFromTemplateRequest(
        template_name=template, new_volume_name=f"{run.name}-root"
    )
    if size is not None:
        request.size_bytes = size
    volume: zfs_pb2.Volume = _zfs_call(lambda stub: stub.CloneFromTemplate(request))()
    delete = zfs_pb2.DeleteVolumeRequest(name=volume.name)
    undo = Undo(
        f"volume {volume.name}",
        _zfs_call(lambda stub: stub.DeleteVolume(delete)),
        (volume.id,),
        f"mvirt volume delete {volume.name}",
    )
    run.done(f"cloned volume {volume.name} ({volume.id}) from template {template}", undo, volume.id)
    return vmm_pb2.DiskConfig(path=volume.path)


def create_nic(run: Orchestration, network: str) -> vmm_pb2.NicConfig:
    """Step 2: a NIC ``<name>-nic0`` on ``network``; its config for the VM."""
    request = net_pb2.CreateNicRequest(network_id=network, name=f"{run.name}-nic0")
    nic: net_pb2.Nic = _net_call(lambda stub: stub.CreateNic(request))()
    delete = net_pb2.DeleteNicRequest(id=nic.id)
    undo = Undo(
        f"NIC {nic.name}",
        _net_call(lambda stub: stub.DeleteNic(delete)),
        (nic.id, nic.network_id),
        f"mvirt nic delete {nic.id}",
    )
    run.done(
        f"created NIC {nic.name} ({nic.id}) on network {network}", undo, nic.id, nic.network_id
    )
    config = vmm_pb2.NicConfig(mac=nic.mac_address)
    if nic.HasField("tap_name"):
        config.tap = nic.tap_name
    else:
        config.vhost_socket = nic.socket_path
    return config


def remove_vm_resources(vm: vmm_pb2.Vm, volumes: bool, nics: bool) -> list[str]:
    """After the VM is deleted: the volumes behind its disks and the NICs behind its NICs.
    Returns one line per object removed."""
    removed = []
    if volumes and vm.config.disks:
        paths = {d.path for d in vm.config.disks}

        def delete_volumes(stub: zfs_pb2_grpc.ZfsServiceStub) -> None:
            for volume in stub.ListVolumes(zfs_pb2.ListVolumesRequest()).volumes:
                if volume.path in paths:
                    stub.DeleteVolume(zfs_pb2.DeleteVolumeRequest(name=volume.name))
                    removed.append(f"volume {safe(volume.name)}")

        _zfs_call(delete_volumes)()
    if nics and vm.config.nics:
        taps = {n.tap for n in vm.config.nics if n.HasField("tap")}
        sockets = {n.vhost_socket for n in vm.config.nics if n.HasField("vhost_socket")}

        def delete_nics(stub: net_pb2_grpc.NetServiceStub) -> None:
            for nic in stub.ListNics(net_pb2.ListNicsRequest()).nics:
                if (nic.HasField("tap_name") and nic.tap_name in taps) or (
                    nic.socket_path and nic.socket_path in sockets
                ):
                    stub.DeleteNic(net_pb2.DeleteNicRequest(id=nic.id))
                    removed.append(f"NIC {safe(nic.name)}")

        _net_call(delete_nics)()
    return removed


def create(
    request: vmm_pb2.CreateVmRequest,
    template: str | None,
    size: int | None,
    network: str | None,
    server: str | None,
) -> vmm_pb2.Vm:
    """The volume, the NIC, then the VM ``request`` names (with both); on a failure, what was
    made is undone and the error says so."""
    name = request.name
    with audit_log() as audit:
        run = Orchestration(name, audit)
        try:
            if template:
                root = clone_volume(run, template, size)
                boot_first = [root, *request.config.disks]  # the clone is the boot disk
                del request.config.disks[:]
                request.config.disks.extend(boot_first)
            if network:
                request.config.nics.append(create_nic(run, network))
            with connect(server, "--server", "mvirt-vmm") as channel:
                vm: vmm_pb2.Vm = vmm_pb2_grpc.VmServiceStub(channel).CreateVm(request)
        except (click.ClickException, KeyboardInterrupt) as exc:
            cause = exc.format_message() if isinstance(exc, click.ClickException) else "Ctrl-C"
            left = run.rollback(cause.split(":")[0])
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcome = "; ".join(left) if left else "the steps before it were undone"
            raise CliError(f"{cause} ({outcome})", ExitCode(exc.exit_code)) from None
        run.done(f"created VM {name} ({vm.id})", None, vm.id)
    return vm
