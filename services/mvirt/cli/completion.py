"""Shell completion: ``mvirt completion bash|zsh|fish`` prints the script to load, and
arguments naming daemon objects complete from the daemon (VMs from mvirt-vmm, volumes and
templates from mvirt-zfs, networks from mvirt-net).

A completer asks its daemon with a short deadline and offers nothing when the daemon is not
there: completion never prints an error into the user's command line.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETION_DEADLINE = 2.0
"""Seconds a completer waits for its daemon."""

Lister = Callable[[object], list[str]]
"""Names listed over a gRPC channel."""


def _names(flag: str, service: str, lister: Lister) -> Callable[..., list[CompletionItem]]:
    def complete(
        ctx: click.Context, _param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        from mvirt.cli.rpc import client_options, connect  # noqa: PLC0415 - on demand

        try:
            with ctx:
                client_options().deadline = COMPLETION_DEADLINE
                server = ctx.params.get("server")
                with connect(server if isinstance(server, str) else None, flag, service) as ch:
                    names = lister(ch)
        except Exception:
            return []  # no daemon, no suggestions; never an error in the middle of a line
        return [CompletionItem(n) for n in sorted(set(names)) if n.startswith(incomplete)]

    return complete


def _vm_names(channel: object) -> list[str]:
    from mvirt.proto import vmm_pb2, vmm_pb2_grpc  # noqa: PLC0415

    vms = vmm_pb2_grpc.VmServiceStub(channel).ListVms(vmm_pb2.ListVmsRequest()).vms
    return [vm.name for vm in vms if vm.HasField("name")] or [vm.id for vm in vms]


def _volume_names(channel: object) -> list[str]:
    from mvirt.proto import zfs_pb2, zfs_pb2_grpc  # noqa: PLC0415

    stub = zfs_pb2_grpc.ZfsServiceStub(channel)
    return [v.name for v in stub.ListVolumes(zfs_pb2.ListVolumesRequest()).volumes]


def _template_names(channel: object) -> list[str]:
    from mvirt.proto import zfs_pb2, zfs_pb2_grpc  # noqa: PLC0415

    stub = zfs_pb2_grpc.ZfsServiceStub(channel)
    return [t.name for t in stub.ListTemplates(zfs_pb2.ListTemplatesRequest()).templates]


def _network_names(channel: object) -> list[str]:
    from mvirt.proto import net_pb2, net_pb2_grpc  # noqa: PLC0415

    stub = net_pb2_grpc.NetServiceStub(channel)
    return [n.name for n in stub.ListNetworks(net_pb2.ListNetworksRequest()).networks]


complete_vms = _names("--server", "mvirt-vmm", _vm_names)
"""``shell_complete=`` for an argument naming VMs."""
complete_volumes = _names("--zfs-server", "mvirt-zfs", _volume_names)
"""``shell_complete=`` for an argument naming volumes."""
complete_templates = _names("--zfs-server", "mvirt-zfs", _template_names)
"""``shell_complete=`` for an argument naming templates."""
complete_networks = _names("--net-server", "mvirt-net", _network_names)
"""``shell_complete=`` for an argument naming networks."""


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(*, shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash: eval "$(mvirt completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(mvirt completion zsh)"    (in ~/.zshrc)
    fish: mvirt completion fish > ~/.config/fish/completions/mvirt.fish
    """
    from mvirt.cli.main import cli  # noqa: PLC0415 - the group imports this module lazily

    script_class = get_completion_class(shell)
    assert script_class is not None
    click.echo(script_class(cli, {}, "mvirt", "_MVIRT_COMPLETE").source())
