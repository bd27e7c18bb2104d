"""``mvirt`` commands for VMs (mvirt-vmm): create, list, get, delete, start, stop, kill,
console, system. VMs are named by name or id everywhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
import grpc

from mvirt.cli.completion import complete_networks, complete_templates, complete_vms
from mvirt.cli.exit_codes import not_found
from mvirt.cli.options import resolve_endpoint, usage_error
from mvirt.cli.output import (
    Decorator,
    console,
    output_option,
    print_columns,
    print_json_line,
    print_table,
    safe,
)
from mvirt.cli.rpc import client_options, connect, daemon_option
from mvirt.proto import vmm_pb2, vmm_pb2_grpc

FLAG = "--server"
FOREVER = 366 * 86400.0
"""The deadline of a call asked to wait without limit (`stop --timeout 0`)."""
COLUMNS = ("ID", "NAME", "STATE", "CPUS", "MEMORY", "BOOT", "SINCE / LAST STOP")


def server_option() -> Decorator:
    """``--server`` for mvirt-vmm (env MVIRT_SERVER)."""
    return daemon_option(FLAG)


def _stub(channel: grpc.Channel) -> vmm_pb2_grpc.VmServiceStub:
    return vmm_pb2_grpc.VmServiceStub(channel)


def resolve(stub: vmm_pb2_grpc.VmServiceStub, ref: str) -> str:
    """The id of the VM called ``ref`` (an id or a name)."""
    vms = stub.ListVms(vmm_pb2.ListVmsRequest()).vms
    for vm in vms:
        if vm.id == ref:
            return vm.id
    named = [vm for vm in vms if vm.HasField("name") and vm.name == ref]
    if not named:
        raise not_found(f"no VM is named {ref!r} or has that id; see `mvirt list`")
    return named[0].id


def escape(text: str) -> str:
    """``text`` with rich markup escaped (rich loads only when something is printed so)."""
    from rich.markup import escape as markup_escape  # noqa: PLC0415 - keeps `list` light

    return markup_escape(text)


def message_dict(message: Any) -> dict[str, Any]:
    """The JSON form of a message (proto field names, enums by name)."""
    from google.protobuf.json_format import MessageToDict  # noqa: PLC0415 - json only

    return MessageToDict(message, preserving_proto_field_name=True)


def state_name(state: int) -> str:
    """``RUNNING`` for ``VM_STATE_RUNNING``."""
    return vmm_pb2.VmState.Name(state).removeprefix("VM_STATE_")


def vm_json(vm: vmm_pb2.Vm) -> dict[str, Any]:
    """The JSON form of a VM (proto field names, enums by name)."""
    return message_dict(vm)


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def vm_row(vm: vmm_pb2.Vm) -> tuple[str, ...]:
    """The cells of a VM in ``mvirt list`` (plain text, no markup)."""
    if vm.state == vmm_pb2.VM_STATE_RUNNING and vm.HasField("started_at"):
        since = f"up since {_when(vm.started_at)}"
    else:
        since = vm.stop_reason
    boot = "kernel" if vm.config.boot_mode == vmm_pb2.BOOT_MODE_KERNEL else "disk"
    return (
        vm.id,
        vm.name if vm.HasField("name") else "-",
        state_name(vm.state),
        str(vm.config.vcpus),
        f"{vm.config.memory_mb} MiB",
        boot,
        since,
    )


def vm_fields(vm: vmm_pb2.Vm) -> list[tuple[str, str]]:
    """A VM as (field, value) rows, as ``mvirt get`` and the TUI's detail show it."""
    config = vm.config
    rows = [
        ("id", vm.id),
        ("name", vm.name if vm.HasField("name") else "-"),
        ("state", state_name(vm.state)),
        ("vcpus", str(config.vcpus)),
        ("memory", f"{config.memory_mb} MiB"),
        ("boot", vmm_pb2.BootMode.Name(config.boot_mode).removeprefix("BOOT_MODE_").lower()),
        ("created", _when(vm.created_at)),
    ]
    if vm.HasField("started_at"):
        rows.append(("started", _when(vm.started_at)))
    if vm.stop_reason:
        rows.append(("last stop", vm.stop_reason))
    for field in ("kernel", "initramfs", "cmdline"):
        if config.HasField(field):
            rows.append((field, getattr(config, field)))
    for disk in config.disks:
        rows.append(("disk", disk.path + (" (read-only)" if disk.readonly else "")))
    for nic in config.nics:
        via = f"tap {nic.tap}" if nic.HasField("tap") else f"vhost-user {nic.vhost_socket}"
        rows.append(("nic", f"{nic.mac} via {via}"))
    if config.HasField("user_data"):
        rows.append(("cloud-init", f"{len(config.user_data)} bytes of user-data"))
    return rows


def show_vm(vm: vmm_pb2.Vm, fmt: str) -> None:
    """Print one VM as JSON or a key/value table."""
    if fmt == "json":
        print_json_line(vm_json(vm))
        return
    print_table(("FIELD", "VALUE"), ((k, escape(v)) for k, v in vm_fields(vm)))


def parse_nic(value: str) -> vmm_pb2.NicConfig:
    """``tap=NAME[,mac=MAC]`` or ``vhost=SOCKET[,mac=MAC]``."""
    nic = vmm_pb2.NicConfig()
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if not sep or key not in ("tap", "mac", "vhost"):
            raise click.BadParameter(
                f"{value!r}: use tap=NAME[,mac=MAC] or vhost=SOCKET[,mac=MAC]", param_hint="--nic"
            )
        if key == "vhost":
            nic.vhost_socket = os.path.abspath(item)
        else:
            setattr(nic, key, item)
    return nic


def parse_disk(value: str) -> vmm_pb2.DiskConfig:
    """``PATH`` or ``PATH:ro``; relative paths are made absolute (the daemon needs them so)."""
    path, readonly = (value[:-3], True) if value.endswith(":ro") else (value, False)
    return vmm_pb2.DiskConfig(path=os.path.abspath(path), readonly=readonly)


def disk_path(value: str) -> str:
    """``--disk``: a path as it is, or the name of an mvirt-zfs volume replaced by its path."""
    if "/" in value or os.path.exists(value.removesuffix(":ro")):
        return value
    from mvirt.cli.storage import volume_disk  # noqa: PLC0415 - loads on use

    return volume_disk(value, resolve_endpoint(None, "--zfs-server"))


@click.command()
@click.argument("name", required=False)
@click.option("--kernel", type=click.Path(dir_okay=False), help="kernel for direct boot")
@click.option("--initramfs", type=click.Path(dir_okay=False), help="initramfs (kernel boot)")
@click.option("--cmdline", help="kernel command line (kernel boot)")
@click.option("--memory", type=click.IntRange(1), default=512, show_default=True, help="MiB")
@click.option("--cpus", type=click.IntRange(1), default=1, show_default=True)
@click.option("--disk", "disks", multiple=True, metavar="PATH|VOLUME[:ro]", help="repeatable")
@click.option("--nic", "nics", multiple=True, metavar="tap=NAME|vhost=SOCK[,mac=MAC]")
@click.option("--user-data", type=click.File("r"), help="cloud-init user-data file")
@click.option(
    "--boot",
    type=click.Choice(("auto", "kernel", "disk")),
    default="auto",
    show_default=True,
    help="auto: kernel when --kernel is given, else disk",
)
@click.option("--nested-virt", is_flag=True, help="expose virtualisation to the guest")
@click.option(
    "--template",
    metavar="TEMPLATE",
    shell_complete=complete_templates,
    help="clone the root disk NAME-root from TEMPLATE (mvirt-zfs, --zfs-server)",
)
@click.option("--disk-size", metavar="SIZE", help="size of the cloned root disk (20G)")
@click.option(
    "--network",
    metavar="NETWORK",
    shell_complete=complete_networks,
    help="add a NIC NAME-nic0 on NETWORK (mvirt-net, --net-server)",
)
@output_option()
@server_option()
def create(
    *,
    name: str | None,
    kernel: str | None,
    initramfs: str | None,
    cmdline: str | None,
    memory: int,
    cpus: int,
    disks: tuple[str, ...],
    nics: tuple[str, ...],
    user_data: Any,
    boot: str,
    nested_virt: bool,
    template: str | None,
    disk_size: str | None,
    network: str | None,
    fmt: str,
    server: str | None,
) -> None:
    """Create a VM (stopped).

    With --template and --network the root volume and the NIC are made first, named after
    the VM; if any step fails, the steps before it are undone.
    """
    if (template or network) and not name:
        raise usage_error(
            "--template and --network name the volume and NIC after the VM: give NAME"
        )
    if disk_size and not template:
        raise usage_error("--disk-size sizes the volume cloned with --template: give --template")
    size = None
    if disk_size:
        from mvirt.cli.orchestrate import parse_size  # noqa: PLC0415 - loads on use

        size = parse_size(disk_size)
    config = vmm_pb2.VmConfig(
        vcpus=cpus,
        memory_mb=memory,
        disks=[parse_disk(disk_path(d)) for d in disks],
        nics=[parse_nic(n) for n in nics],
        nested_virt=nested_virt,
        boot_mode={"auto": 0, "disk": 1, "kernel": 2}[boot],  # type: ignore[arg-type]
    )
    if kernel:
        config.kernel = os.path.abspath(kernel)
    if initramfs:
        config.initramfs = os.path.abspath(initramfs)
    if cmdline is not None:
        config.cmdline = cmdline
    if user_data is not None:
        config.user_data = user_data.read()
    request = vmm_pb2.CreateVmRequest(config=config)
    if name:
        request.name = name
    if not (template or network):
        with connect(server, FLAG, "mvirt-vmm") as channel:
            show_vm(_stub(channel).CreateVm(request), fmt)
        return
    from mvirt.cli.orchestrate import create as create_with_resources  # noqa: PLC0415

    vm = create_with_resources(request, template, size, network, server)
    show_vm(vm, fmt)


@click.command("list")
@output_option()
@server_option()
def list_vms(*, fmt: str, server: str | None) -> None:
    """List VMs."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        vms = _stub(channel).ListVms(vmm_pb2.ListVmsRequest()).vms
    if fmt == "json":
        for vm in vms:
            print_json_line(vm_json(vm))
        return
    print_columns(COLUMNS, (vm_row(vm) for vm in vms))


@click.command()
@click.argument("vm", shell_complete=complete_vms)
@output_option()
@server_option()
def get(*, vm: str, fmt: str, server: str | None) -> None:
    """Show one VM."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        stub = _stub(channel)
        show_vm(stub.GetVm(vmm_pb2.GetVmRequest(id=resolve(stub, vm))), fmt)


@click.command()
@click.argument("vms", nargs=-1, required=True, shell_complete=complete_vms)
@click.option(
    "--with-volumes", is_flag=True, help="also delete the volumes behind the VM's disks (mvirt-zfs)"
)
@click.option(
    "--with-nics", is_flag=True, help="also delete the NICs behind the VM's NICs (mvirt-net)"
)
@server_option()
def delete(
    *, vms: tuple[str, ...], with_volumes: bool, with_nics: bool, server: str | None
) -> None:
    """Delete stopped VMs (and, if asked, the volumes and NICs create made for them)."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        stub = _stub(channel)
        for ref in vms:
            vm = stub.GetVm(vmm_pb2.GetVmRequest(id=resolve(stub, ref)))
            stub.DeleteVm(vmm_pb2.DeleteVmRequest(id=vm.id))
            click.echo(f"deleted {safe(ref)}")
            if with_volumes or with_nics:
                from mvirt.cli.orchestrate import remove_vm_resources  # noqa: PLC0415

                for removed in remove_vm_resources(vm, with_volumes, with_nics):
                    click.echo(f"deleted {removed}")


def _report(vm: vmm_pb2.Vm, ref: str, fmt: str) -> None:
    if fmt == "json":
        print_json_line(vm_json(vm))
    else:
        reason = f" ({vm.stop_reason})" if vm.state == vmm_pb2.VM_STATE_STOPPED else ""
        console().print(f"{escape(ref)}: {state_name(vm.state)}{escape(reason)}")


@click.command()
@click.argument("vms", nargs=-1, required=True, shell_complete=complete_vms)
@output_option()
@server_option()
def start(*, vms: tuple[str, ...], fmt: str, server: str | None) -> None:
    """Start VMs."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        stub = _stub(channel)
        for ref in vms:
            _report(stub.StartVm(vmm_pb2.StartVmRequest(id=resolve(stub, ref))), ref, fmt)


@click.command()
@click.argument("vms", nargs=-1, required=True, shell_complete=complete_vms)
@click.option(
    "--timeout",
    type=click.IntRange(0),
    default=30,
    show_default=True,
    help="seconds to wait for the guest before killing it (0: wait forever)",
)
@output_option()
@server_option()
def stop(*, vms: tuple[str, ...], timeout: int, fmt: str, server: str | None) -> None:
    """Stop VMs gracefully (ACPI power button), killing them after --timeout seconds."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        stub = _stub(channel)
        for ref in vms:
            request = vmm_pb2.StopVmRequest(id=resolve(stub, ref), timeout_seconds=timeout)
            # The call waits for the guest: allow that on top of the usual deadline.
            deadline = client_options().resolved_deadline()
            wait = timeout + deadline if timeout else FOREVER
            _report(stub.StopVm(request, timeout=wait), ref, fmt)


@click.command()
@click.argument("vms", nargs=-1, required=True, shell_complete=complete_vms)
@output_option()
@server_option()
def kill(*, vms: tuple[str, ...], fmt: str, server: str | None) -> None:
    """Kill VMs at once (no guest shutdown)."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        stub = _stub(channel)
        for ref in vms:
            _report(stub.KillVm(vmm_pb2.KillVmRequest(id=resolve(stub, ref))), ref, fmt)


@click.command("console")
@click.argument("vm", shell_complete=complete_vms)
@server_option()
def console_cmd(*, vm: str, server: str | None) -> None:
    """Attach to a VM's serial console (Ctrl+a t leaves)."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        stub = _stub(channel)
        from mvirt.cli.console import run_console  # noqa: PLC0415 - terminal code: console only

        run_console(stub, resolve(stub, vm))


def system_rows(info: vmm_pb2.SystemInfo) -> Iterator[tuple[str, str]]:
    """The host as (field, value) rows, as ``mvirt system`` and the TUI show it."""
    yield "host", f"{info.host.hostname} (kernel {info.host.kernel_version})"
    yield "cpu", f"{info.cpu.model} ({info.cpu.vendor})"
    yield (
        "cpus",
        f"{info.total_cpus} logical, {info.cpu.physical_cores} cores, "
        + (f"{info.cpu.sockets} socket(s); {info.allocated_cpus} allocated to VMs"),
    )
    yield (
        "memory",
        (
            f"{info.total_memory_mb} MiB, {info.memory.available_bytes >> 20} MiB available; "
            f"{info.allocated_memory_mb} MiB allocated to VMs"
        ),
    )
    if info.memory.hugepages_total:
        yield "hugepages", f"{info.memory.hugepages_free}/{info.memory.hugepages_total} free"
    yield "load", f"{info.load_1:.2f} {info.load_5:.2f} {info.load_15:.2f}"
    for node in info.numa_nodes:
        yield f"numa {node.id}", f"{node.total_memory_bytes >> 20} MiB, cpus {list(node.cpu_ids)}"
    for disk in info.disks:
        yield "disk", f"{disk.device} {disk.size_bytes >> 30} GiB {disk.model}".rstrip()
    for nic in info.nics:
        state = "up" if nic.is_up else "down"
        addresses = " ".join([*nic.ipv4, *nic.ipv6])
        yield "nic", f"{nic.name} {nic.mac} {state} {addresses}".rstrip()


@click.command()
@output_option()
@server_option()
def system(*, fmt: str, server: str | None) -> None:
    """Show the host: CPUs, memory, NUMA, disks, NICs, and what VMs have allocated."""
    with connect(server, FLAG, "mvirt-vmm") as channel:
        info = _stub(channel).GetSystemInfo(vmm_pb2.GetSystemInfoRequest())
    if fmt == "json":
        print_json_line(message_dict(info))
    else:
        print_table(("", ""), ((k, escape(v)) for k, v in system_rows(info)))


COMMANDS = (create, list_vms, get, delete, start, stop, kill, console_cmd, system)
